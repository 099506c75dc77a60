# Declarations of the parts of whisper.h / ggml.h that _core.pyx uses (whisper.cpp 1.8.5).
# Only the fields we touch are listed; Cython takes the real layout from the headers.
# Every function is `nogil`: none of them calls back into Python by itself.

from libc.stdint cimport int32_t, int64_t, uint32_t

cdef extern from "ggml.h" nogil:
    enum ggml_log_level:
        GGML_LOG_LEVEL_NONE
        GGML_LOG_LEVEL_DEBUG
        GGML_LOG_LEVEL_INFO
        GGML_LOG_LEVEL_WARN
        GGML_LOG_LEVEL_ERROR
        GGML_LOG_LEVEL_CONT

    ctypedef void (*ggml_log_callback)(ggml_log_level level, const char * text, void * user_data) noexcept
    ctypedef bint (*ggml_abort_callback)(void * data) noexcept

    enum ggml_type:
        GGML_TYPE_F32
        GGML_TYPE_F16
        GGML_TYPE_Q8_0
        GGML_TYPE_COUNT

    int64_t ggml_blck_size(ggml_type type)
    size_t  ggml_type_size(ggml_type type)
    const char * ggml_type_name(ggml_type type)
    bint    ggml_quantize_requires_imatrix(ggml_type type)
    size_t  ggml_quantize_chunk(ggml_type type, const float * src, void * dst,
                                int64_t start, int64_t nrows, int64_t n_per_row,
                                const float * imatrix)
    void    ggml_quantize_init(ggml_type type)

    # One-node graphs for kernel checks (quantize.pxi's mul_mat, soft_max, gelu and flash_attn)
    struct ggml_context
    struct ggml_cgraph
    struct ggml_tensor:
        void * data
    struct ggml_init_params:
        size_t mem_size
        void * mem_buffer
        bint   no_alloc
    enum ggml_status:
        GGML_STATUS_SUCCESS
    ggml_context * ggml_init(ggml_init_params params)
    void          ggml_free(ggml_context * ctx)
    size_t        ggml_tensor_overhead()
    size_t        ggml_graph_overhead()
    size_t        ggml_nbytes(const ggml_tensor * tensor)
    ggml_tensor * ggml_new_tensor_2d(ggml_context * ctx, ggml_type type, int64_t ne0, int64_t ne1)
    ggml_tensor * ggml_mul_mat(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b)
    ggml_tensor * ggml_soft_max(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_gelu(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_new_tensor_3d(ggml_context * ctx, ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2)
    ggml_tensor * ggml_flash_attn_ext(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v,
                                      ggml_tensor * mask, float scale, float max_bias, float logit_softcap)
    ggml_cgraph * ggml_new_graph(ggml_context * ctx)
    void          ggml_build_forward_expand(ggml_cgraph * cgraph, ggml_tensor * tensor)


cdef extern from "ggml-cpu.h" nogil:
    void        ggml_cpu_init()
    ggml_status ggml_graph_compute_with_ctx(ggml_context * ctx, ggml_cgraph * cgraph, int n_threads)


cdef extern from "whisper.h" nogil:
    const int WHISPER_SAMPLE_RATE

    ctypedef int32_t whisper_token

    struct whisper_context:
        pass
    struct whisper_state:
        pass

    enum whisper_alignment_heads_preset:
        WHISPER_AHEADS_NONE
        WHISPER_AHEADS_N_TOP_MOST
        WHISPER_AHEADS_CUSTOM
        WHISPER_AHEADS_TINY_EN
        WHISPER_AHEADS_TINY
        WHISPER_AHEADS_BASE_EN
        WHISPER_AHEADS_BASE
        WHISPER_AHEADS_SMALL_EN
        WHISPER_AHEADS_SMALL
        WHISPER_AHEADS_MEDIUM_EN
        WHISPER_AHEADS_MEDIUM
        WHISPER_AHEADS_LARGE_V1
        WHISPER_AHEADS_LARGE_V2
        WHISPER_AHEADS_LARGE_V3
        WHISPER_AHEADS_LARGE_V3_TURBO

    ctypedef struct whisper_ahead:
        int n_text_layer
        int n_head

    ctypedef struct whisper_aheads:
        size_t n_heads
        const whisper_ahead * heads

    struct whisper_context_params:
        bint use_gpu
        bint flash_attn
        int  gpu_device
        bint dtw_token_timestamps       # with vendor/patches/0007: loads the alignment heads
        whisper_alignment_heads_preset dtw_aheads_preset
        int dtw_n_top
        whisper_aheads dtw_aheads
        ggml_type type_k                # with vendor/patches/0014: the caches' K and V types,
        ggml_type type_v                #   F16 or Q8_0 (flash attention only)

    ctypedef struct whisper_token_data:
        whisper_token id
        whisper_token tid
        float p
        float plog
        float pt
        float ptsum
        int64_t t0
        int64_t t1
        int64_t t_dtw                   # DTW: the token's end (vendor/patches/0007)
        float vlen
        int64_t t_dtw_start             # DTW: the token's start (vendor/patches/0007)

    enum whisper_sampling_strategy:
        WHISPER_SAMPLING_GREEDY
        WHISPER_SAMPLING_BEAM_SEARCH

    ctypedef void (*whisper_new_segment_callback)(whisper_context * ctx, whisper_state * state, int n_new, void * user_data) noexcept
    ctypedef void (*whisper_progress_callback)(whisper_context * ctx, whisper_state * state, int progress, void * user_data) noexcept
    ctypedef bint (*whisper_encoder_begin_callback)(whisper_context * ctx, whisper_state * state, void * user_data) noexcept
    ctypedef void (*whisper_logits_filter_callback)(whisper_context * ctx, whisper_state * state,
                                                    const whisper_token_data * tokens, int n_tokens,
                                                    float * logits, void * user_data) noexcept
    ctypedef bint (*whisper_fallback_callback)(whisper_context * ctx, whisper_state * state,
                                               const whisper_token_data * tokens, int n_tokens,
                                               void * user_data) noexcept   # vendor/patches/0006

    struct _greedy_params:
        int best_of
    struct _beam_params:
        int beam_size
        float patience

    struct whisper_full_params:
        whisper_sampling_strategy strategy
        int n_threads
        int n_threads_decode            # vendor/patches/0002 (0: n_threads)
        int n_max_text_ctx
        int offset_ms
        int duration_ms
        bint translate
        bint no_context
        bint no_timestamps
        bint single_segment
        bint print_special
        bint print_progress
        bint print_realtime
        bint print_timestamps
        bint token_timestamps
        float thold_pt
        float thold_ptsum
        int max_len
        bint split_on_word
        int max_tokens
        bint debug_mode
        int audio_ctx
        bint tdrz_enable
        const char * suppress_regex
        const char * initial_prompt
        bint carry_initial_prompt
        const whisper_token * prompt_tokens
        int prompt_n_tokens
        const char * language
        bint detect_language
        bint suppress_blank
        bint suppress_nst
        float temperature
        float max_initial_ts
        float length_penalty
        float temperature_inc
        float entropy_thold
        float logprob_thold
        float no_speech_thold
        _greedy_params greedy
        _beam_params beam_search
        whisper_new_segment_callback new_segment_callback
        void * new_segment_callback_user_data
        whisper_progress_callback progress_callback
        void * progress_callback_user_data
        whisper_encoder_begin_callback encoder_begin_callback
        void * encoder_begin_callback_user_data
        ggml_abort_callback abort_callback
        void * abort_callback_user_data
        whisper_logits_filter_callback logits_filter_callback
        void * logits_filter_callback_user_data
        bint vad
        whisper_fallback_callback fallback_callback    # vendor/patches/0006
        void * fallback_callback_user_data
        bint single_timestamp_skips_window     # vendor/patches/0006
        bint dtw_token_timestamps              # vendor/patches/0007
        int window_start_limit_ms              # vendor/patches/0011
        const whisper_token * prefix_tokens    # vendor/patches/0019
        int prefix_n_tokens
        float max_tokens_per_second            # vendor/patches/0026

    const char * whisper_version()
    const char * whisper_print_system_info()
    void whisper_log_set(ggml_log_callback log_callback, void * user_data)

    whisper_context_params whisper_context_default_params()
    whisper_full_params whisper_full_default_params(whisper_sampling_strategy strategy)

    whisper_context * whisper_init_from_file_with_params_no_state(const char * path_model, whisper_context_params params)
    whisper_state * whisper_init_state(whisper_context * ctx)
    void whisper_free(whisper_context * ctx)
    void whisper_free_state(whisper_state * state)

    int whisper_n_vocab(whisper_context * ctx)
    int whisper_is_multilingual(whisper_context * ctx)
    int whisper_model_n_vocab(whisper_context * ctx)
    int whisper_model_n_audio_ctx(whisper_context * ctx)
    int whisper_model_n_audio_state(whisper_context * ctx)
    int whisper_model_n_audio_head(whisper_context * ctx)
    int whisper_model_n_audio_layer(whisper_context * ctx)
    int whisper_model_n_text_ctx(whisper_context * ctx)
    int whisper_model_n_text_state(whisper_context * ctx)
    int whisper_model_n_text_head(whisper_context * ctx)
    int whisper_model_n_text_layer(whisper_context * ctx)
    int whisper_model_n_mels(whisper_context * ctx)
    int whisper_model_ftype(whisper_context * ctx)
    int whisper_model_type(whisper_context * ctx)
    const char * whisper_model_type_readable(whisper_context * ctx)

    int whisper_lang_max_id()
    int whisper_lang_id(const char * lang)
    const char * whisper_lang_str(int id)
    const char * whisper_lang_str_full(int id)

    int whisper_pcm_to_mel_with_state(whisper_context * ctx, whisper_state * state,
                                      const float * samples, int n_samples, int n_threads)
    int whisper_set_mel_with_state(whisper_context * ctx, whisper_state * state,
                                   const float * data, int n_len, int n_mel)
    int whisper_lang_auto_detect_with_state(whisper_context * ctx, whisper_state * state,
                                            int offset_ms, int n_threads, float * lang_probs)

    whisper_token whisper_token_eot(whisper_context * ctx)
    whisper_token whisper_token_beg(whisper_context * ctx)
    int whisper_tokenize(whisper_context * ctx, const char * text, whisper_token * tokens, int n_max_tokens)
    const char * whisper_token_to_str(whisper_context * ctx, whisper_token token)

    int whisper_full_with_state(whisper_context * ctx, whisper_state * state, whisper_full_params params,
                                const float * samples, int n_samples)
    int whisper_full_n_segments_from_state(whisper_state * state)
    int whisper_full_lang_id_from_state(whisper_state * state)
    int64_t whisper_full_get_segment_t0_from_state(whisper_state * state, int i_segment)
    int64_t whisper_full_get_segment_t1_from_state(whisper_state * state, int i_segment)
    bint whisper_full_get_segment_speaker_turn_next_from_state(whisper_state * state, int i_segment)
    const char * whisper_full_get_segment_text_from_state(whisper_state * state, int i_segment)
    float whisper_full_get_segment_no_speech_prob_from_state(whisper_state * state, int i_segment)
    int whisper_full_n_tokens_from_state(whisper_state * state, int i_segment)
    const char * whisper_full_get_token_text_from_state(whisper_context * ctx, whisper_state * state,
                                                        int i_segment, int i_token)
    whisper_token_data whisper_full_get_token_data_from_state(whisper_state * state, int i_segment, int i_token)


# Silero voice-activity detection (whisper.cpp 1.8.5, used by vad.pxi).
cdef extern from "whisper.h" nogil:
    struct whisper_vad_context:
        pass
    struct whisper_vad_segments:
        pass

    ctypedef struct whisper_vad_params:
        float threshold
        int   min_speech_duration_ms
        int   min_silence_duration_ms
        float max_speech_duration_s
        int   speech_pad_ms
        float samples_overlap

    struct whisper_vad_context_params:
        int  n_threads
        bint use_gpu
        int  gpu_device

    whisper_vad_params whisper_vad_default_params()
    whisper_vad_context_params whisper_vad_default_context_params()
    whisper_vad_context * whisper_vad_init_from_file_with_params(const char * path_model,
                                                                 whisper_vad_context_params params)
    bint whisper_vad_detect_speech(whisper_vad_context * vctx, const float * samples, int n_samples)
    bint whisper_vad_detect_speech_no_reset(whisper_vad_context * vctx, const float * samples, int n_samples)
    void whisper_vad_reset_state(whisper_vad_context * vctx)
    int whisper_vad_n_probs(whisper_vad_context * vctx)
    float * whisper_vad_probs(whisper_vad_context * vctx)
    whisper_vad_segments * whisper_vad_segments_from_probs(whisper_vad_context * vctx, whisper_vad_params params)
    whisper_vad_segments * whisper_vad_segments_from_prob_array(whisper_vad_context * vctx, const float * probs,
                                                                int n_probs, whisper_vad_params params)
    int whisper_vad_segments_n_segments(whisper_vad_segments * segments)
    float whisper_vad_segments_get_segment_t0(whisper_vad_segments * segments, int i_segment)
    float whisper_vad_segments_get_segment_t1(whisper_vad_segments * segments, int i_segment)
    void whisper_vad_free_segments(whisper_vad_segments * segments)
    void whisper_vad_free(whisper_vad_context * ctx)
