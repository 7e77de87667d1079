import sys

from keras_nas.cli import main

sys.exit(main())
