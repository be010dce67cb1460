"""Every error photopoet raises on purpose, under one root: :class:`PhotopoetError`.

A command catches the root once and prints its message, which names the file or setting and the reason. Each
class is named for what failed. Most also keep the built-in base they had before the root existed
(``ValueError`` for input that cannot be used, ``RuntimeError`` for a job that cannot go on, ``ImportError``
for an engine that is not installed), so code that caught those still does. This module imports nothing from
photopoet: any layer may raise these. The few errors that carry data and behaviour (the Graph API's
``GraphError``, the web app's ``UserError``) live beside their code and derive from the root too.
"""

from __future__ import annotations


class PhotopoetError(Exception):
    """The root of every error photopoet raises on purpose; its message is meant for the user as is."""


# -- core: configuration, cache, folders ----------------------------------------------------------------------


class ConfigError(PhotopoetError, ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class CacheError(PhotopoetError, RuntimeError):
    """A cache file that cannot be used; the message names the file and what to do about it."""


class CacheDamaged(CacheError):
    """The cache file is damaged (truncated, overwritten, bad pages): set it aside and start afresh."""


class RunError(PhotopoetError, RuntimeError):
    """A job that cannot start (bad folders, an executor that cannot run); the message says which and why."""


class RejectedFile(PhotopoetError):
    """A photo file that is not used; the message is the reason shown to the user (the run goes on)."""


# -- models ---------------------------------------------------------------------------------------------------


class E5FileError(PhotopoetError, RuntimeError):
    """An e5 model file or fine-tuned encoder folder that cannot be used; the message names it and the reason."""


class AdapterError(PhotopoetError, ValueError):
    """A style adapter folder that cannot be used; the message names the folder and the reason."""


class EngineUnavailable(PhotopoetError, ImportError):
    """An optional engine is not installed here (or fails to load); the caller may fall back or go on without."""


class OCRUnavailable(EngineUnavailable):
    """The OCR engine (``rapidocr`` on ``onnxruntime``) or its bundled model files are not there."""


class LlamaCppUnavailable(EngineUnavailable):
    """``llama_cpp`` is not installed (or fails to load); the caller may fall back to ``transformers``."""


class TokenizerError(PhotopoetError, RuntimeError):
    """The evaluation tokenizer cannot run here (no Java, no jar) or its output does not line up with the input."""


# -- poetry ---------------------------------------------------------------------------------------------------


class CorpusError(PhotopoetError, ValueError):
    """A corpus that cannot be read at all (missing file, not a chinese-poetry package); names the file."""


class PoemIndexError(PhotopoetError, RuntimeError):
    """A poem index folder that cannot be used; the message names the folder or file and the reason."""


class LexicalIndexError(PoemIndexError):
    """A lexical (BM25) index folder that cannot be used; the message names the folder and the reason."""


# -- writing, executors, publishing ---------------------------------------------------------------------------


class StyleFileError(PhotopoetError, ValueError):
    """A style file that cannot be used; the message names the file and the reason."""


class ExecutorError(RunError):
    """An executor that cannot run (Ray missing, cluster unreachable, shard folder unusable); says why."""


class PublishError(PhotopoetError, RuntimeError):
    """Publishing cannot start or must stop (no token, bad token, limit reached); the message says why."""


# -- evaluation and training ----------------------------------------------------------------------------------


class TruthError(PhotopoetError, ValueError):
    """A reference (ground-truth) file that cannot be used; the message names the file and line."""


class TextEvalError(PhotopoetError, ValueError):
    """Nothing can be scored: a file cannot be read, or no id has both a prediction and a reference."""


class DataFileError(PhotopoetError, ValueError):
    """A training data file that cannot be used at all; the message names the file and the reason."""


class TripletsError(DataFileError):
    """No triplets can be built: the captions file or the photo folder cannot be used."""


class TrainError(PhotopoetError, RuntimeError):
    """Training that cannot start or go on; the message says why and what to do."""


class StyleTrainError(TrainError):
    """Training a caption style (adapter or prefix VLM) cannot start or go on."""


class RetrieverTrainError(TrainError):
    """Fine-tuning the poem retriever cannot start or go on; names the file or setting and the reason."""


# -- review web app -------------------------------------------------------------------------------------------


class ReviewError(PhotopoetError, ValueError):
    """An edit that cannot be made (unknown post or photo, a limit); the message says which and why."""


class UnsafePath(PhotopoetError, ValueError):
    """A request for a file outside the allowed folders (or no such file)."""


class UploadTooLarge(PhotopoetError):
    """The request body passed the total upload limit; reading stopped there."""


class JobFailed(PhotopoetError):
    """A background job's expected failure: its message is shown to the editor as is."""
