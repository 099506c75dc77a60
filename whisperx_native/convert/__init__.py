"""Model conversion to whisper.cpp's ggml format.

``convert_ct2`` turns a CTranslate2 (faster-whisper) Whisper model directory
into a whisper.cpp model file; ``python -m whisperx_native.convert`` does the
same from the command line.
"""

from .ct2_to_ggml import convert_ct2

__all__ = ["convert_ct2"]
