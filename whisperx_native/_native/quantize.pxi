# Quantization through ggml's own kernels (included from _core.pyx).
#
# whisperx_native.models.quantize streams a model tensor by tensor and calls
# quantize_rows for each 2-D weight; everything else (file layout, which tensors,
# atomic writing) stays in Python. mul_mat, soft_max, gelu and flash_attn run one ggml node
# on the CPU, for the tests of our kernel patches.

from libc.stdint cimport uint8_t, uint16_t
from libc.string cimport memcpy, memset

import numpy as _np

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


cdef object _run_node(w.ggml_context * ctx, w.ggml_tensor * node, float[:, ::1] o, int n_threads):
    """Compute ``node`` (its data preset to NaN, so anything the kernel skips shows) and copy
    it into ``o``; the caller frees ``ctx``."""
    cdef w.ggml_cgraph * gf
    cdef w.ggml_status status
    with nogil:
        memset(node.data, 0xff, w.ggml_nbytes(node))
        gf = w.ggml_new_graph(ctx)
        w.ggml_build_forward_expand(gf, node)
        status = w.ggml_graph_compute_with_ctx(ctx, gf, n_threads)
        if status == w.GGML_STATUS_SUCCESS:
            memcpy(&o[0, 0], node.data, w.ggml_nbytes(node))
    if status != w.GGML_STATUS_SUCCESS:
        raise NativeError(f"ggml_graph_compute failed ({<int>status})")


cdef w.ggml_context * _kernel_context(size_t data_bytes) except NULL:
    cdef w.ggml_init_params params
    # tensors, graph, and the work buffer ggml_graph_compute_with_ctx takes from the context
    params.mem_size = data_bytes + 4 * w.ggml_tensor_overhead() + w.ggml_graph_overhead() + (1 << 20)
    params.mem_buffer = NULL
    params.no_alloc = False
    cdef w.ggml_context * ctx
    with nogil:
        w.ggml_cpu_init()
        ctx = w.ggml_init(params)
    if ctx == NULL:
        raise MemoryError("ggml_init failed")
    return ctx


def mul_mat(int type_id, const uint8_t[::1] weights not None, int64_t rows, const float[:, ::1] x not None,
            int n_threads=1):
    """``x @ W.T`` by ggml's CPU matrix product (one ``ggml_mul_mat`` node): ``W`` is
    ``rows`` rows of ``x.shape[1]`` values in ggml type ``type_id`` (as quantize_rows
    writes them). Returns float32 ``[x.shape[0], rows]``. The GIL is released."""
    cdef int64_t k = x.shape[1]
    cdef int64_t n = x.shape[0]
    cdef int64_t blck
    block, tsize, _imatrix = quant_type_info(type_id)
    blck = block
    if rows <= 0 or n <= 0 or k <= 0 or k % blck:
        raise OptionError(f"a {rows} x {k} product of {n} rows does not fit ggml type {type_id}")
    if weights.shape[0] != rows * (k // blck) * <int64_t>tsize:
        raise OptionError(f"weights hold {weights.shape[0]} bytes, {rows} rows need {rows * (k // blck) * tsize}")
    if n_threads < 1:
        raise OptionError("n_threads must be at least 1")
    out = _np.empty((n, rows), dtype=_np.float32)
    cdef w.ggml_context * ctx = _kernel_context(weights.shape[0] + 3 * n * k * sizeof(float)
                                                + n * rows * sizeof(float))
    cdef w.ggml_tensor * a
    cdef w.ggml_tensor * b
    try:
        with nogil:
            a = w.ggml_new_tensor_2d(ctx, <w.ggml_type>type_id, k, rows)
            b = w.ggml_new_tensor_2d(ctx, w.GGML_TYPE_F32, k, n)
            memcpy(a.data, &weights[0], w.ggml_nbytes(a))
            memcpy(b.data, &x[0, 0], w.ggml_nbytes(b))
        _run_node(ctx, w.ggml_mul_mat(ctx, a, b), out, n_threads)
    finally:
        w.ggml_free(ctx)
    return out


ctypedef w.ggml_tensor * (*_row_op)(w.ggml_context * ctx, w.ggml_tensor * a) noexcept nogil


cdef object _rows_node(const float[:, ::1] x, int n_threads, _row_op op, str what):
    """``op`` (a one-input ggml node that keeps its input's shape) over the rows of ``x``."""
    cdef int64_t rows = x.shape[0]
    cdef int64_t n = x.shape[1]
    if rows <= 0 or n <= 0:
        raise OptionError(f"a {what} of {rows} rows of {n} values")
    if n_threads < 1:
        raise OptionError("n_threads must be at least 1")
    out = _np.empty((rows, n), dtype=_np.float32)
    # the input, the output and a row of work per thread (softmax's)
    cdef w.ggml_context * ctx = _kernel_context(2 * rows * n * sizeof(float) + n_threads * n * sizeof(float))
    cdef w.ggml_tensor * a
    try:
        with nogil:
            a = w.ggml_new_tensor_2d(ctx, w.GGML_TYPE_F32, n, rows)
            memcpy(a.data, &x[0, 0], w.ggml_nbytes(a))
        _run_node(ctx, op(ctx, a), out, n_threads)
    finally:
        w.ggml_free(ctx)
    return out


def soft_max(const float[:, ::1] x not None, int n_threads=1):
    """The softmax of each row of ``x`` by ggml's CPU kernel (one ``ggml_soft_max`` node;
    its row maximum is ggml_vec_max_f32's). Returns float32 of ``x``'s shape."""
    return _rows_node(x, n_threads, w.ggml_soft_max, "softmax")


def gelu(const float[:, ::1] x not None, int n_threads=1):
    """ggml's GELU of each value of ``x`` (one ``ggml_gelu`` node: its F16 table, a row at a
    time). Returns float32 of ``x``'s shape."""
    return _rows_node(x, n_threads, w.ggml_gelu, "GELU")


def flash_attn(const float[:, :, ::1] q not None, const uint16_t[:, :, ::1] k not None,
               const uint16_t[:, :, ::1] v not None, const uint16_t[:, ::1] mask=None, float scale=1.0,
               int n_threads=1):
    """ggml's CPU flash attention (one ``ggml_flash_attn_ext`` node). ``q`` is float32
    ``[heads, rows, dk]``; ``k`` and ``v`` are F16 (a float16 array's ``.view(np.uint16)``)
    ``[kv_heads, n_kv, dk]`` and ``[kv_heads, n_kv, dv]``; ``mask``, F16 ``[rows, n_kv]``, is
    added to the scaled scores (-inf hides a key). Returns float32 ``[rows, heads, dv]``."""
    cdef int64_t heads = q.shape[0], rows = q.shape[1], dk = q.shape[2]
    cdef int64_t kv_heads = k.shape[0], n_kv = k.shape[1], dv = v.shape[2]
    if min(heads, rows, dk, kv_heads, n_kv, dv) <= 0:
        raise OptionError("flash_attn needs non-empty q, k and v")
    if k.shape[2] != dk or v.shape[0] != kv_heads or v.shape[1] != n_kv or heads % kv_heads:
        raise OptionError(f"shapes do not fit: q ({heads}, {rows}, {dk}), k ({k.shape[0]}, {k.shape[1]}, {k.shape[2]}), "
                          f"v ({v.shape[0]}, {v.shape[1]}, {v.shape[2]})")
    if mask is not None and (mask.shape[0] != rows or mask.shape[1] != n_kv):
        raise OptionError(f"mask must be [{rows}, {n_kv}], got [{mask.shape[0]}, {mask.shape[1]}]")
    if n_threads < 1:
        raise OptionError("n_threads must be at least 1")
    out = _np.empty((rows * heads, dv), dtype=_np.float32)
    # the tensors, and the work buffer of the tiled path: per thread a few 64-row tiles and
    # one head's K and V in F32
    cdef size_t data = (heads * rows * dk + 2 * rows * heads * dv) * sizeof(float) + kv_heads * n_kv * (dk + dv) * 2
    data += rows * n_kv * 2 + n_threads * sizeof(float) * (64 * (2 * dk + 2 * dv) + 2 * 64 * 64
                                                          + ((n_kv + 63) // 64) * 64 * (dk + dv) + 64)
    cdef w.ggml_context * ctx = _kernel_context(data)
    cdef w.ggml_tensor * tq
    cdef w.ggml_tensor * tk
    cdef w.ggml_tensor * tv
    cdef w.ggml_tensor * tm = NULL
    try:
        with nogil:
            tq = w.ggml_new_tensor_3d(ctx, w.GGML_TYPE_F32, dk, rows, heads)
            tk = w.ggml_new_tensor_3d(ctx, w.GGML_TYPE_F16, dk, n_kv, kv_heads)
            tv = w.ggml_new_tensor_3d(ctx, w.GGML_TYPE_F16, dv, n_kv, kv_heads)
            memcpy(tq.data, &q[0, 0, 0], w.ggml_nbytes(tq))
            memcpy(tk.data, &k[0, 0, 0], w.ggml_nbytes(tk))
            memcpy(tv.data, &v[0, 0, 0], w.ggml_nbytes(tv))
        if mask is not None:
            with nogil:
                tm = w.ggml_new_tensor_2d(ctx, w.GGML_TYPE_F16, n_kv, rows)
                memcpy(tm.data, &mask[0, 0], w.ggml_nbytes(tm))
        _run_node(ctx, w.ggml_flash_attn_ext(ctx, tq, tk, tv, tm, scale, 0.0, 0.0), out, n_threads)
    finally:
        w.ggml_free(ctx)
    return out.reshape(rows, heads, dv)
