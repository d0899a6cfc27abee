"""ImageReward's score in PyTorch, written from the model definition
(THUDM/ImageReward@c1392c6, read at the source; not imported, nothing copied):

  ImageReward/ImageReward.py  score(): text_input = tokenizer(prompt,
      padding='max_length', truncation=True, max_length=35); image =
      preprocess(pil); image_embeds = blip.visual_encoder(image);
      image_atts = ones; text_output = blip.text_encoder(ids, attention_mask,
      encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts);
      mlp(last_hidden_state[:, 0, :]); (r - mean) / std.
      _transform(224): Resize(224, BICUBIC), CenterCrop(224), RGB, ToTensor,
      Normalize(CLIP mean, std). MLP: Linear(768,1024), Dropout, Linear(1024,
      128), Dropout, Linear(128,64), Dropout, Linear(64,16), Linear(16,1); the
      ReLUs are commented out.
  models/BLIP/vit.py  PatchEmbed (Conv2d with bias) + cls_token + pos_embed;
      Block: x + attn(norm1(x)), x + mlp(norm2(x)); Attention: qkv Linear
      (bias) reshaped (B, N, 3, heads, hd), softmax(q k^T * hd^-0.5); Mlp
      fc1, GELU, fc2; LayerNorm eps 1e-6; final norm over all tokens.
  models/BLIP/med.py  BertEmbeddings: word + absolute position (no token
      types), LayerNorm, (dropout); BertLayer (mode 'multimodal'):
      attention (self, post-LN: LayerNorm(dense(ctx) + x)), crossattention
      (key/value Linear(encoder_width)), intermediate (dense + gelu), output
      (LayerNorm(dense + x)); extended mask (1 - mask) * -10000 added to the
      scores before softmax; scores / sqrt(head_size).

Debian has no torchvision, so the transform is built from what torchvision
does to a PIL image: F.resize → img.resize((new_w, new_h), BICUBIC) with the
short side = 224 and the long side int(224 * long / short) (unchanged when the
size is already right); F.center_crop → crop at int(round((h - 224) / 2.0)),
int(round((w - 224) / 2.0)); to_tensor → uint8 / 255 in float32;
normalize → (x - mean) / std in float32. Everything after runs in float64.
"""
import torch
import torch.nn.functional as F
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def transform(pil, n_px=224):
    w, h = pil.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = n_px, int(n_px * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        pil = pil.resize((new_w, new_h), Image.BICUBIC)
    top = int(round((new_h - n_px) / 2.0))
    left = int(round((new_w - n_px) / 2.0))
    pil = pil.crop((left, top, left + n_px, top + n_px)).convert("RGB")
    x = torch.frombuffer(bytearray(pil.tobytes()), dtype=torch.uint8).reshape(n_px, n_px, 3)
    x = x.permute(2, 0, 1).to(torch.float32).div(255)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float32)[:, None, None]
    return (x - mean) / std


class ImageRewardRef:
    def __init__(self, sd, vision_heads, text_cfg, mean=0.16717362830052426, std=1.0333394966054072):
        self.s = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
        self.vh = vision_heads
        self.th = text_cfg["num_attention_heads"]
        self.tl = text_cfg["num_hidden_layers"]
        self.teps = text_cfg["layer_norm_eps"]
        self.mean, self.std = mean, std

    def lin(self, x, name):
        return x @ self.s[name + ".weight"].T + self.s[name + ".bias"]

    def ln(self, x, name, eps):
        return F.layer_norm(x, (x.shape[-1],), self.s[name + ".weight"], self.s[name + ".bias"], eps)

    def visual(self, img):  # img [B, 3, S, S]
        s, v = self.s, "blip.visual_encoder."
        x = F.conv2d(img.double(), s[v + "patch_embed.proj.weight"], s[v + "patch_embed.proj.bias"],
                     stride=s[v + "patch_embed.proj.weight"].shape[-1])
        x = x.flatten(2).transpose(1, 2)
        B, N, C = x.shape
        x = torch.cat([s[v + "cls_token"].expand(B, -1, -1), x], 1) + s[v + "pos_embed"][:, :N + 1]
        i = 0
        while (v + "blocks.%d.norm1.weight" % i) in s:
            p = v + "blocks.%d." % i
            h = self.ln(x, p + "norm1", 1e-6)
            qkv = self.lin(h, p + "attn.qkv").reshape(B, N + 1, 3, self.vh, C // self.vh).permute(2, 0, 3, 1, 4)
            q, k, vv = qkv[0], qkv[1], qkv[2]
            a = ((q @ k.transpose(-2, -1)) * (C // self.vh) ** -0.5).softmax(-1)
            x = x + self.lin((a @ vv).transpose(1, 2).reshape(B, N + 1, C), p + "attn.proj")
            h = self.ln(x, p + "norm2", 1e-6)
            x = x + self.lin(F.gelu(self.lin(h, p + "mlp.fc1")), p + "mlp.fc2")
            i += 1
        return self.ln(x, v + "norm", 1e-6)

    def attention(self, x, p, heads, kv=None, mask=None):
        q = self.lin(x, p + ".self.query")
        src = x if kv is None else kv
        k, v = self.lin(src, p + ".self.key"), self.lin(src, p + ".self.value")
        B, Lq, H = q.shape
        hd = H // heads

        def split(t):
            return t.reshape(B, t.shape[1], heads, hd).permute(0, 2, 1, 3)
        sc = split(q) @ split(k).transpose(-1, -2) / hd ** 0.5
        if mask is not None:
            sc = sc + mask
        ctx = (sc.softmax(-1) @ split(v)).permute(0, 2, 1, 3).reshape(B, Lq, H)
        return self.ln(self.lin(ctx, p + ".output.dense") + x, p + ".output.LayerNorm", self.teps)

    def text(self, ids, att, image_embeds):
        s, t = self.s, "blip.text_encoder."
        L = ids.shape[1]
        x = s[t + "embeddings.word_embeddings.weight"][ids] + s[t + "embeddings.position_embeddings.weight"][:L]
        x = self.ln(x, t + "embeddings.LayerNorm", self.teps)
        ext = (1.0 - att[:, None, None, :].double()) * -10000.0
        enc = (1.0 - torch.ones(image_embeds.shape[:2], dtype=torch.float64)[:, None, None, :]) * -10000.0
        for i in range(self.tl):
            p = t + "encoder.layer.%d." % i
            x = self.attention(x, p + "attention", self.th, mask=ext)
            x = self.attention(x, p + "crossattention", self.th, kv=image_embeds, mask=enc)
            h = F.gelu(self.lin(x, p + "intermediate.dense"))
            x = self.ln(self.lin(h, p + "output.dense") + x, p + "output.LayerNorm", self.teps)
        return x

    def score(self, ids, att, img):
        """ids, att: [B, 35] long; img: [B, 3, S, S] float32 → [B] float64 rewards."""
        x = self.text(ids, att, self.visual(img))[:, 0, :]
        i = 0
        while i < 64:
            name = "mlp.layers.%d" % i
            if name + ".weight" in self.s:
                x = self.lin(x, name)  # Dropout layers are identity in eval
            i += 1
        return ((x - self.mean) / self.std).squeeze(-1)
