"""Loading weights: device and dtype choice, and the GGUF -> safetensors cache.

Loading a GGUF file through transformers de-quantizes every tensor in Python (about a
minute for the default model on 2 cores). We do that once, write a plain transformers
folder keyed by the GGUF file's sha256, and load that folder afterwards (about 1 s).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...modelfiles import ProgressFn, _stderr_progress, cache_root, file_sha256, usable_cpus  # noqa: F401 (callers import them here)

log = logging.getLogger("llmdemo")



def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if device not in {"cpu", "mps"} and not device.startswith("cuda"):
            raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}


def pick_dtype(device: str, dtype: str | None = None):
    """CUDA: bf16 where supported, else fp16. CPU: fp32 (bf16 is emulated and slow here)."""
    import torch

    if dtype and dtype != "auto":
        try:
            return getattr(torch, _DTYPES[dtype])
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16") from None
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def set_threads() -> int:
    """Use the cores this process may run on (torch's default can count all cores of the host)."""
    import torch

    want = os.environ.get("LLMDEMO_THREADS")
    try:
        n = max(1, int(want)) if want else usable_cpus()
    except ValueError:  # not a number: the CPUs this process may use
        n = usable_cpus()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    info: dict[str, Any]  # what a report needs to reproduce a number


COMPLETE_MARKER = "llmdemo-complete.json"


def gguf_cache_dir(gguf_path: str | Path) -> tuple[Path, str]:
    sha = file_sha256(gguf_path)
    return cache_root() / f"gguf-{sha[:16]}", sha


def convert_gguf(gguf_path: str | Path, progress: ProgressFn = _stderr_progress) -> Path:
    """Convert a GGUF file to a transformers folder in the cache, once; return that folder.

    The folder is written under a temporary name and renamed when complete, so a
    conversion killed half-way leaves only a ``.tmp-*`` folder that is never loaded
    (and is removed by the next conversion).
    """
    gguf_path = Path(gguf_path)
    final, sha = gguf_cache_dir(gguf_path)
    if (final / COMPLETE_MARKER).is_file():
        return final
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(final.name + ".tmp-*"):
        _remove_if_dead(stale)
    tmp = final.parent / f"{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    progress(
        f"first load of {gguf_path.name}: converting GGUF to a cache in {final} "
        "(one time, about a minute; later loads take about a second)"
    )
    t0 = time.perf_counter()
    folder, name = str(gguf_path.parent), gguf_path.name
    progress("1/3 reading the tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    progress(f"2/3 de-quantizing the weights (tokenizer read in {time.perf_counter() - t0:.0f} s)")
    t1 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    progress(f"3/3 writing the cache (weights de-quantized in {time.perf_counter() - t1:.0f} s)")
    tmp.mkdir(parents=True)
    tokenizer.save_pretrained(tmp)
    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.save_pretrained(tmp)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"))
    (tmp / COMPLETE_MARKER).write_text(
        json.dumps({"gguf_file": str(gguf_path), "gguf_sha256": sha, "converted_s": round(time.perf_counter() - t0, 1)})
    )
    try:
        os.rename(tmp, final)
    except OSError:
        # Another process finished first: keep theirs.
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / COMPLETE_MARKER).is_file():
            raise
    progress(f"converted in {time.perf_counter() - t0:.0f} s")
    return final


def _converted_gguf(location: str, progress: ProgressFn) -> tuple[Path, dict[str, Any]]:
    """The GGUF file's converted folder, and what a report says of it (the file's hash, the cache folder)."""
    folder = convert_gguf(location, progress)
    return folder, {"file_sha256": json.loads((folder / COMPLETE_MARKER).read_text())["gguf_sha256"],
                    "cache_dir": str(folder)}


def _remove_if_dead(tmp: Path) -> None:
    try:
        pid = int(tmp.name.rsplit("-", 1)[1])
        os.kill(pid, 0)
        if pid != os.getpid():
            return  # a live conversion in another process
    except (ValueError, IndexError, ProcessLookupError):
        pass
    except PermissionError:
        return
    shutil.rmtree(tmp, ignore_errors=True)


def load_weights(
    kind: str,
    location: str,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    progress: ProgressFn = _stderr_progress,
) -> Loaded:
    """Load tokenizer and model from a GGUF file, a local folder or a hub id."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    set_threads()
    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    info: dict[str, Any] = {"kind": kind, "location": location}
    if kind == "gguf":
        folder, about = _converted_gguf(location, progress)
        info.update(about)
        src, kwargs = str(folder), {}
    else:
        src, kwargs = location, {"trust_remote_code": trust_remote_code}
    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(src, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(src, **kwargs)
    cls = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    if kind != "hub":
        hf_logging.disable_progress_bar()  # a local load takes a second: no bar needed
    try:
        model = cls.from_pretrained(src, dtype=torch_dtype, **kwargs)
    finally:
        hf_logging.enable_progress_bar()
    model.to(dev)
    model.eval()
    if kind == "hub":
        info["revision"] = getattr(config, "_commit_hash", None)
    elif kind == "local":
        weights = sorted(Path(src).glob("*.safetensors")) or sorted(Path(src).glob("*.bin"))
        if weights:
            info["file_sha256"] = file_sha256(weights[0])
    return Loaded(model, tokenizer, info)


# ------------------------------------------------------------------ lean start
# A warm start used to spend ~1 s importing transformers, ~0.5 s building its tokenizer and ~1.5 s
# in from_pretrained, none of which the lean forward needs. For the folders it can read itself
# (a Llama model in one safetensors file, standard RoPE, a tokenizer.json read as transformers
# reads it), load() reads the tensors and tokenizer directly; the transformers model is built
# only when a feature needs it (scoring, Inside the model, --decode transformers).


@dataclass
class LeanWeights:
    """A Llama model folder read without transformers: its config, tensors on demand, and size."""

    folder: Path
    config: Any  # a SimpleNamespace of config.json with the defaults the lean forward reads
    generation: Any  # generation_config.json as a SimpleNamespace (or None)
    n_params: int
    cache_dir: Path  # where the converted weights are kept (lean-<kernel dtype>.safetensors)

    def fused(self, dtype_name: str) -> dict[str, Any]:
        """The decoder's linear weights as FastLlama uses them, in ``dtype_name``, from a cache file.

        Written once per dtype (converting takes ~0.2 s and reads every float32 page of the model,
        which then stays counted in the process's memory); later starts map the file instead.
        """
        import torch
        from safetensors import safe_open
        from safetensors.torch import save_file

        from .lean.fast import fused_weights

        path = self.cache_dir / f"lean-{dtype_name}.safetensors"
        if path.is_file():
            try:
                with safe_open(str(path), framework="pt") as f:
                    return {name: f.get_tensor(name) for name in f.keys()}
            except Exception:  # noqa: BLE001 - a damaged file: convert again and replace it
                pass
        out = fused_weights(self.module_view(), getattr(torch, dtype_name))
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            save_file(out, str(tmp))
            os.replace(tmp, path)
        except OSError as e:  # a read-only cache: convert at every start
            log.warning("could not keep converted weights in %s: %s", self.cache_dir, e)
        return out

    def tensors(self) -> dict[str, Any]:
        """All tensors of model.safetensors, each memory-mapped on its own (read when touched, released when dropped)."""
        from safetensors import safe_open

        with safe_open(str(self.folder / "model.safetensors"), framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}

    def module_view(self) -> Any:
        """The tensors arranged as ``LlamaForCausalLM``'s modules are, for :class:`llmdemo.backends.hf.lean.fast.FastLlama`."""
        from types import SimpleNamespace as NS

        from .lean.fast import Rope

        cfg, t = self.config, self.tensors()

        def lin(name):
            w = t[name + ".weight"]
            return NS(weight=w, bias=t.get(name + ".bias"), out_features=w.shape[0])

        def norm(name):
            return NS(weight=t[name + ".weight"], variance_epsilon=cfg.rms_norm_eps)

        layers = []
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            layers.append(NS(
                self_attn=NS(q_proj=lin(p + "self_attn.q_proj"), k_proj=lin(p + "self_attn.k_proj"),
                             v_proj=lin(p + "self_attn.v_proj"), o_proj=lin(p + "self_attn.o_proj")),
                mlp=NS(gate_proj=lin(p + "mlp.gate_proj"), up_proj=lin(p + "mlp.up_proj"),
                       down_proj=lin(p + "mlp.down_proj")),
                input_layernorm=norm(p + "input_layernorm"), post_attention_layernorm=norm(p + "post_attention_layernorm")))
        # tied embeddings are stored once, under either name (safetensors' save_model keeps lm_head's)
        embed = t.get("model.embed_tokens.weight")
        if embed is None:
            embed = t["lm_head.weight"]
        base = NS(embed_tokens=NS(weight=embed), layers=layers, norm=norm("model.norm"), rotary_emb=Rope(cfg))
        head = lin("lm_head") if "lm_head.weight" in t else NS(weight=embed, bias=None)
        return NS(config=cfg, model=base, get_output_embeddings=lambda: head)

    def load_transformers(self) -> Any:
        """The same folder through transformers (what scoring and Inside the model use)."""
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            model = AutoModelForCausalLM.from_pretrained(str(self.folder), dtype="float32")
        finally:
            hf_logging.enable_progress_bar()
        return model.eval()


_LEAN_DEFAULTS = {"is_encoder_decoder": False, "hidden_act": "silu", "mlp_bias": False, "attention_bias": False,
                  "pretraining_tp": 1, "rms_norm_eps": 1e-6, "tie_word_embeddings": False}


def lean_unsupported(folder: str | Path) -> str | None:
    """Why a model folder needs transformers to load, or None when the lean start can read it."""
    from ...tokenizer import LightTokenizer

    folder = Path(folder)
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no readable config.json"
    if cfg.get("model_type") != "llama" or cfg.get("auto_map"):
        return f"model type {cfg.get('model_type')!r}"
    rope = cfg.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default" or cfg.get("rope_scaling"):
        return "a RoPE variant"
    if "rope_theta" not in rope and "rope_theta" not in cfg:
        return "no rope_theta"
    if not (folder / "model.safetensors").is_file():
        return "weights not in one model.safetensors"
    return LightTokenizer.supported(folder)


def load_lean(folder: str | Path, cache_dir: str | Path | None = None) -> tuple[LeanWeights, Any]:
    """The lean start: (weights, tokenizer) of a folder that :func:`lean_unsupported` accepts."""
    from types import SimpleNamespace

    from safetensors import safe_open

    from ...tokenizer import LightTokenizer

    folder = Path(folder)
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    cfg = SimpleNamespace(**{**_LEAN_DEFAULTS, **raw})
    rope = dict(raw.get("rope_parameters") or {})
    rope.setdefault("rope_theta", raw.get("rope_theta", 10000.0))
    rope.setdefault("rope_type", "default")
    cfg.rope_parameters = rope
    gen_file = folder / "generation_config.json"
    gen = SimpleNamespace(**json.loads(gen_file.read_text(encoding="utf-8"))) if gen_file.is_file() else None
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        n = 0
        for name in f.keys():
            n += _numel(f.get_slice(name).get_shape())
    return LeanWeights(folder, cfg, gen, n, Path(cache_dir) if cache_dir else folder), LightTokenizer(folder)


def load_weights_lean(kind: str, location: str, *, device: str | None = None, dtype: str | None = None,
                      progress: ProgressFn = _stderr_progress) -> tuple[LeanWeights, Any, dict[str, Any]] | None:
    """(weights, tokenizer, info) through the lean start, or None where the model needs transformers to load."""
    if kind not in ("gguf", "local") or pick_device(device) != "cpu" or _DTYPES.get(dtype or "float32") != "float32":
        return None
    info: dict[str, Any] = {"kind": kind, "location": location}
    if kind == "gguf":
        folder, about = _converted_gguf(location, progress)
    else:
        folder, about = Path(location), {}
        if not folder.is_dir():
            return None
    if lean_unsupported(folder):
        return None
    if kind == "local":
        about = {"file_sha256": file_sha256(folder / "model.safetensors")}
    info.update(about)
    # a GGUF's converted folder is in the cache already; a user's folder may be read-only
    cache = folder if kind == "gguf" else cache_root() / f"lean-{info['file_sha256'][:16]}"
    set_threads()
    weights, tokenizer = load_lean(folder, cache)
    return weights, tokenizer, info


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
