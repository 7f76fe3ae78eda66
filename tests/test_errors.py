"""errors.require: the one idiom for optional dependencies."""

import pytest

from jaxcolor import errors


def test_require_returns_the_module():
    import json

    assert errors.require("json", "demo") is json


def test_require_names_the_package_and_the_extra_that_installs_it():
    with pytest.raises(errors.MissingDependencyError) as info:
        errors.require("jaxcolor_no_such_package", "video")
    assert isinstance(info.value, errors.UsageError) and isinstance(info.value, ImportError)
    message = str(info.value)
    assert "jaxcolor_no_such_package" in message and "pip install 'jaxcolor[video]'" in message
    assert "\n" not in message
    assert errors.report(info.value, stream=open("/dev/null", "w")) == errors.EXIT_USAGE
