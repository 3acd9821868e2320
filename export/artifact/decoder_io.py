"""The endpoints of a language model's cached decoding step, as `decoder.onnx` and the
SavedModel's `decoder_step` signature both name them (the names Hugging Face's ONNX decoders
use):

    inputs   token_ids                    int64   [batch, new]
             position_ids                 int64   [batch, new]   absolute positions
             past_key_values.<i>.key      float32 [batch, heads, past, head_dim]  one per block
             past_key_values.<i>.value    float32 [batch, heads, past, head_dim]
    outputs  logits                       float32 [batch, new, vocab_size]
             present.<i>.key              float32 [batch, heads, past + new, head_dim]
             present.<i>.value            float32 [batch, heads, past + new, head_dim]

`past` may be 0: the first step reads the whole prompt. The writers
(`export.formats.decoder_onnx`, `export.formats.savedmodel_decoder`) and the runtime
(`export.runtime.decoder_step`) read the names from here. Standard library only.
"""

TOKEN_IDS, POSITION_IDS, LOGITS = "token_ids", "position_ids", "logits"


def past_names(layer: int) -> tuple[str, str]:
    """The input names of block `layer`'s past keys and values."""
    return f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"


def present_names(layer: int) -> tuple[str, str]:
    """The output names of block `layer`'s present keys and values."""
    return f"present.{layer}.key", f"present.{layer}.value"
