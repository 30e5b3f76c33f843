"""`tf.gfile` of TF1: the CamelCase file helpers of older scripts (`tf.gfile.Exists`, ...)."""

from symgraph.compat.v1._names import unsupported
from symgraph.compat.v1.io.gfile import GFile
from symgraph.compat.v1.io.gfile import copy as Copy  # noqa: N812
from symgraph.compat.v1.io.gfile import exists as Exists  # noqa: N812
from symgraph.compat.v1.io.gfile import glob as Glob  # noqa: N812
from symgraph.compat.v1.io.gfile import isdir as IsDirectory  # noqa: N812
from symgraph.compat.v1.io.gfile import listdir as ListDirectory  # noqa: N812
from symgraph.compat.v1.io.gfile import makedirs as MakeDirs  # noqa: N812
from symgraph.compat.v1.io.gfile import mkdir as MkDir  # noqa: N812
from symgraph.compat.v1.io.gfile import remove as Remove  # noqa: N812
from symgraph.compat.v1.io.gfile import rename as Rename  # noqa: N812
from symgraph.compat.v1.io.gfile import rmtree as DeleteRecursively  # noqa: N812
from symgraph.compat.v1.io.gfile import stat as Stat  # noqa: N812
from symgraph.compat.v1.io.gfile import walk as Walk  # noqa: N812

Open = GFile

__all__ = ["Copy", "DeleteRecursively", "Exists", "GFile", "Glob", "IsDirectory",
           "ListDirectory", "MakeDirs", "MkDir", "Open", "Remove", "Rename", "Stat", "Walk"]

__getattr__ = unsupported("tf.gfile")
