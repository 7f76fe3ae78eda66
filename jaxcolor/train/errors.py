"""The exceptions that mean "the user's input or config is wrong", not "jaxcolor has a bug".

Entry points print these as one line and exit non-zero; anything else keeps its traceback.
"""

from jaxcolor.data.pipeline import PipelineError
from jaxcolor.data.records import RecordsError
from jaxcolor.data.stats import EmptyFilterError
from jaxcolor.models.port import PortError
from jaxcolor.train.checkpoint import CheckpointError
from jaxcolor.train.inputs import DataConfigError
from jaxcolor.train.mesh import DistributionError
from jaxcolor.train.loop import NonFiniteLossError

USER_ERRORS = (PipelineError, RecordsError, EmptyFilterError, PortError, CheckpointError,
               DataConfigError, DistributionError, NonFiniteLossError)
