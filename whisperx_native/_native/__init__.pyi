from ._core import (
    MAX_DECODERS as MAX_DECODERS,
    SAMPLE_RATE as SAMPLE_RATE,
    Context as Context,
    State as State,
    build_info as build_info,
    lang_id as lang_id,
    languages as languages,
    system_info as system_info,
    version as version,
)
from ._core import VadContext as VadContext
