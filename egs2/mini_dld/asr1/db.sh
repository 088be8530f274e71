# Where the corpus lives.  mini_dld generates its own speech with eSpeak NG
# (installed from PyPI with the package), so nothing is downloaded: this is
# only the folder the generated audio is written to.
MINI_DLD=${MINI_DLD:-downloads/mini_dld}
