# TED-LIUM release 3 (openslr resource 51): the extracted TEDLIUM_release-3
# folder (the one holding legacy/{train,dev,test}/{sph,stm}), or the folder
# holding it.  No shared copy exists: set TEDLIUM3 here or in the environment.
# Left empty, local/data.sh downloads TEDLIUM_release-3.tgz into downloads/
# when the network reaches openslr, and otherwise says what to place where.
TEDLIUM3=${TEDLIUM3:-}
