"""Whisper model files: the ggml file layout (:mod:`.ggml_file`)."""
