/*
 * models/seqcls.h — the `seqcls` kind: decoder-only sequence classifiers
 * (Hugging Face Qwen2/Qwen3/Llama `…ForSequenceClassification`, e.g.
 * Skywork-Reward-V2-Qwen3-0.6B) served from their folders as they are.
 *
 * Folder: config.json (model_type qwen2 | qwen3 | llama, or the matching
 * `architectures` entry) + model.safetensors or a sharded index. Weights in
 * F32, F16 or BF16; F16/BF16 are widened to F32 at load and all arithmetic
 * is float32 (so a BF16 checkpoint matches PyTorch run in float32 on the
 * same bf16 weights, not transformers' bf16 arithmetic; see
 * tests/parity/test_seqcls_torch.py for both differences).
 *
 * Forward (reference/models-and-formats.md §3.1): embeddings, per layer
 * RMSNorm → q/k/v (+ Qwen2 biases, + q_norm/k_norm per head for Qwen3) →
 * RoPE half-split (rope_theta, optional llama3 scaling) → causal GQA
 * attention → o_proj + residual → RMSNorm → SwiGLU MLP + residual; final
 * RMSNorm; `score` [num_labels, hidden] at the pooled token. Pooling is
 * transformers' current rule: the rightmost token whose id != pad_token_id
 * (position 0 if every token is pad; the last token if pad_token_id is
 * null). Each item runs unpadded with positions 0..n-1, exactly HF's
 * single-sequence result. Tokens after the pooled one cannot change it
 * (causal attention), so they are dropped before the forward pass, and the
 * last layer computes queries, attention output and MLP only for the
 * pooled rows (its keys/values still cover every token).
 *
 * Batching: the batch's items are packed back to back ([total_tokens,
 * hidden]) so every projection is one GEMM over all tokens; attention runs
 * per item on its slice (blocked over queries, skipping the keys a causal
 * block cannot see). No padding is computed. Each worker's scratch is sized
 * at load for max(max_batch_tokens, max_tokens) tokens and max_batch_size
 * items; forward() allocates nothing and splits a batch that would exceed
 * them.
 *
 * Items, exactly one form each:
 *   {"input_ids": [ints]}  each id < vocab_size;
 *   {"text": str}          encoded by the folder's tokenizer with its special
 *                          tokens; a leading BOS the text already carries is
 *                          not doubled (Skywork's recipe strips it);
 *   {"messages": [{role, content}, ...]}  rendered by the folder's chat
 *                          template (lib/text/chat: any template the Jinja
 *                          engine compiles), encoded without added
 *                          specials, as apply_chat_template;
 *   {"prompt": str, "response": str}  the messages [user, assistant].
 * The tokenizer is tokenizer.json, or vocab.json + merges.txt
 * (+ added_tokens.json) with the Qwen2 or Llama-3 preset by model_type. A
 * folder without tokenizer files takes input_ids only; a missing or
 * refused chat template fails only the items that need it, with the
 * engine's reason (construct and line). check() does not tokenise (it runs on the HTTP
 * thread): a text item's cost is an estimate (bytes / 4 + 8, at most
 * max_tokens) and its exact length is checked in prepare().
 *
 * Dimensions: one per id2label entry, named by its label; a single-label
 * head whose label is transformers' default "LABEL_0" is named "score"
 * (Skywork-style RMs), otherwise labels are kept as they are.
 *
 * Process reward models (config.json `architectures`):
 * Qwen2ForProcessRewardModel (score.0 [H, H] + bias → ReLU → score.2 [2, H]
 * + bias, as vLLM/SGLang define it for Qwen2.5-Math-PRM) and
 * Qwen2/Qwen3/LlamaForTokenClassification (score [num_labels, H] + optional
 * bias, num_labels 1 or 2) are read at every step-separator token instead of
 * the pooled one: the last layer computes only those rows, and tokens after
 * the last separator are dropped. The separator: options "step_tag_id" |
 * "step_separator", else config.json's, else 151651 ("<extra_0>") for
 * Qwen2ForProcessRewardModel; a token classifier without one is refused.
 * Step reward: the 2-way softmax's positive class (column 1), or the head's
 * value for 1 label. Dimensions prm_min, prm_mean, prm_last, prm_product;
 * item->extra = {"step_rewards": [..], "step_probs": [[p0, p1], ..] (2
 * classes)}. Extra form {"prompt", "steps": [str], "system"?: str|null}:
 * messages [system, user prompt, assistant sep.join(steps) + sep] (the
 * model card's), system from the item, else option "system_prompt" (default
 * for Qwen2ForProcessRewardModel: the card's "Please reason step by step,
 * ..."). No separator in an item, or steps that do not line up with the
 * separators after tokenisation, is RWD_E_UNPROCESSABLE.
 *
 * Per-item options (vLLM's fields, copied to each item by the drop-in
 * endpoints; native items may carry them too):
 *   "add_special_tokens": bool — overrides the form's default (text: true,
 *     messages and prompt + response: false, as vLLM's completion and chat
 *     forms);
 *   "truncate_prompt_tokens": -1 | 1..max_tokens — keep the item's last k
 *     tokens (-1: max_tokens), whatever the "truncate" option says.
 *
 * Kind options (all optional):
 *   "truncate": what an item over max_tokens gets, on every endpoint:
 *     false or "none" — it fails with RWD_E_UNPROCESSABLE (HTTP 422) naming
 *     its token count; true or "left" — it keeps its LAST max_tokens tokens
 *     (the end of a conversation carries the response and the pooled token,
 *     which the reward is about); "right" — its FIRST max_tokens tokens (a HF
 *     tokenizer's truncation=True default, as OpenRLHF's serve_rm).
 *     Positions restart at 0 in the kept window. Unset (the default): the
 *     item's "truncation_side" ("left" | "right" | "none"), which lib/compat
 *     writes as the endpoint's default (/get_reward: "right"), else 422.
 *     An item's "truncate_prompt_tokens" wins over all of these.
 *   "precision": "fp32" (default: OpenBLAS sgemm, the exact path) or "bf16"
 *     — every projection (q, k, v, o, gate with SiLU fused, up, down) runs
 *     on nn/bf16 (oneDNN, BF16 inputs, FP32 accumulation, weights rounded
 *     to BF16 once at load); embeddings, RMSNorm, RoPE, attention, softmax
 *     and the score head stay FP32. Bound against the FP32 oracle
 *     (tests/parity/test_bf16_torch.py): relative error <= 2e-2, Spearman
 *     >= 0.999 per label. Refused at load (RWD_E_UNSUPPORTED, naming the
 *     CPU's ISA) on a CPU without AVX512_BF16 or AMX.
 */
#ifndef RWD_MODELS_SEQCLS_H
#define RWD_MODELS_SEQCLS_H

#include "models/model.h"

extern const rwd_model_ops rwd__seqcls_ops;

#endif
