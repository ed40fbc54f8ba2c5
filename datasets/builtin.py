"""Imports every module that registers data set builders."""
import datasets.digits  # noqa: F401
import datasets.afhq  # noqa: F401
import datasets.cifar  # noqa: F401
import datasets.stanford_dogs  # noqa: F401
import datasets.stl10  # noqa: F401
import datasets.stylegan_fakes  # noqa: F401
import datasets.svhn  # noqa: F401
import datasets.fake_digits  # noqa: F401
