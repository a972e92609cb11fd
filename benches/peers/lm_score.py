"""transformers peer of `rote bench lm`: per-token log-probabilities of a causal LM (tokens/s).

Mirrors src/lm/bench.rs: `--batch` sequences of `--seq` token ids drawn uniformly from the
vocabulary (numpy seed 0; speed does not depend on the ids), scored `--reps` times after one
untimed warm-up pass. One pass = the model's logits at every position, log-softmax over the
vocabulary, and the log-probability of each next token gathered (what `CausalLm::token_logprobs`
and MIMIR's LOSS attack compute), read back to the host. f32, eval mode, no gradients.

Models: `--model FOLDER` (a Hugging Face folder, e.g. the demo GPT rote trained,
assets/demo/lm/gpt-demo) or `--shape gpt2-small` (transformers' default GPT2Config: 12 layers,
768 wide, 12 heads, vocabulary 50,257, 1,024 positions; random weights from torch seed 0).
"""

import numpy as np
import torch
import transformers

import common


def load(args, dev):
    if args.model:
        model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        name = args.model
    else:
        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
        name = "gpt2-small-shaped (random weights)"
    return model.to(dev).eval(), name


def score(model, ids):
    logits = model(ids).logits[:, :-1].float()
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(2, ids[:, 1:, None]).squeeze(2).cpu()


def main():
    p = common.parser(__doc__)
    p.add_argument("--model", help="Hugging Face model folder (default: --shape)")
    p.add_argument("--shape", default="gpt2-small", choices=["gpt2-small"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    common.add_device_arg(p)
    args = p.parse_args()
    dev = common.pick_device(args)
    model, name = load(args, dev)
    vocab = model.config.vocab_size
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(0, vocab, size=(args.batch, args.seq))).to(dev)
    with torch.inference_mode():
        score(model, ids)  # warm-up
        with common.Timer(dev) as t:
            for _ in range(args.reps):
                out = score(model, ids)
    tokens = args.batch * args.seq * args.reps
    common.note(f"{name}: {tokens} tokens in {t.seconds:.3f} s; mean ln p {out.mean().item():.3f}")
    common.emit(
        "lm-score",
        dev,
        t.seconds,
        tokens / t.seconds,
        model=name,
        batch=args.batch,
        seq=args.seq,
        reps=args.reps,
        params=sum(x.numel() for x in model.parameters()),
        transformers=transformers.__version__,
        mirrors=f"rote bench lm --batch {args.batch} --seq {args.seq} --reps {args.reps}"
        + (f" --model {args.model}" if args.model else " --shape gpt2-small"),
    )


if __name__ == "__main__":
    main()
