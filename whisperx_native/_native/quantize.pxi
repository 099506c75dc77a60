# Quantization through ggml's own kernels (included from _core.pyx).
#
# whisperx_native.models.quantize streams a model tensor by tensor and calls
# quantize_rows for each 2-D weight; everything else (file layout, which tensors,
# atomic writing) stays in Python.

from libc.stdint cimport uint8_t

from whisperx_native.errors import NativeError, OptionError


def quant_type_info(int type_id):
    """(block size, bytes per block, needs an importance matrix) of a ggml type."""
    if type_id < 0 or type_id >= <int>w.GGML_TYPE_COUNT:
        raise OptionError(f"ggml type id {type_id} is out of range")
    cdef w.ggml_type t = <w.ggml_type>type_id
    return (int(w.ggml_blck_size(t)), int(w.ggml_type_size(t)), bool(w.ggml_quantize_requires_imatrix(t)))


def quantize_rows(int type_id, const float[:, ::1] src not None, uint8_t[::1] dst not None):
    """Quantize the rows of a C-contiguous float32 matrix into ``dst``, returning the bytes written.

    ``dst`` must hold exactly ``rows * type_size * cols / block_size`` bytes. Runs
    ggml_quantize_chunk with the GIL released. Types that need an importance matrix
    (the IQ family) are refused: ggml would abort without one.
    """
    cdef int64_t nrows = src.shape[0]
    cdef int64_t n_per_row = src.shape[1]
    cdef int64_t blck, expect
    cdef size_t written = 0
    block, tsize, imatrix = quant_type_info(type_id)
    if block <= 1:
        raise OptionError(f"ggml type {type_id} is not a quantized type")
    if imatrix:
        raise OptionError(f"ggml type {type_id} needs an importance matrix")
    blck = block
    if n_per_row % blck:
        raise OptionError(f"rows of {n_per_row} values are not whole blocks of {blck}")
    expect = nrows * (n_per_row // blck) * <int64_t>tsize
    if dst.shape[0] != expect:
        raise OptionError(f"dst holds {dst.shape[0]} bytes, the quantized rows need {expect}")
    if nrows == 0 or n_per_row == 0:
        return 0
    cdef w.ggml_type t = <w.ggml_type>type_id
    with nogil:
        written = w.ggml_quantize_chunk(t, &src[0, 0], <void *>&dst[0], 0, nrows, n_per_row, NULL)
    if <int64_t>written != expect:
        raise NativeError(f"ggml_quantize_chunk wrote {written} bytes, expected {expect}")
    return int(written)
