"""Whisper model files and the model store.

* :mod:`.ggml_file`: the ggml file layout and its validation;
* :mod:`.registry`: the models known by name (hparams, checksums, memory needs);
* :mod:`.store`: name → valid file in the cache (cache, download, conversion, quantization);
* :mod:`.download`: resumable, verified HTTP(S) downloads;
* :mod:`.quantize`: quantization with ggml's kernels;
* :mod:`.cli`: the ``whisperx-native models`` subcommands.
"""
