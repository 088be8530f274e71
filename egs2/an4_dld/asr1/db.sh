# AN4 (CMU census database): the folder that holds etc/ and wav/, either the
# GitHub copy (WAV) or CMU's an4_sphere.tar.gz extracted (SPHERE).  In a
# checkout of this project it is ../shared/data/an4 beside the repository;
# elsewhere set AN4 in the environment or here (local/data.sh downloads the
# SPHERE archive into it when it is absent and the network allows).
AN4=${AN4:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../../../shared/data/an4}
