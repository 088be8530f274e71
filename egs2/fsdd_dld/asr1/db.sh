# Free Spoken Digit Dataset: the folder that contains recordings/.  In a
# checkout of this project it is ../shared/data/fsdd beside the repository;
# elsewhere set FSDD in the environment or here.
FSDD=${FSDD:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../../../shared/data/fsdd}
