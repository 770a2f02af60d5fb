"""The tiny language model's GRPO update: minipg beside the same model and update in PyTorch.

Same model (minipg.lm.addition's policy, warm-started by imitation on 700 demonstrations as
GRPO starts in bench_grpo.py: token and position embeddings over a causal window of
9 tokens, a 144-128-128-14 tanh MLP), same weights (copied from minipg's into torch's), same
batch (P = 32 prompts x G = 8 responses generated once by minipg's policy, rewarded by the
addition verifier), same update (minipg.algos.grpo.update with the Config defaults:
num_iterations = 2 gradient steps on the batch, each the clipped token loss with GRPO's token
weights, global-norm clipping to 1.0, Adam with lr 1e-3), same dtype. PyTorch's update is
written the way a PyTorch user would: nn.Embedding, nn.Linear, log_softmax + gather, autograd,
clip_grad_norm_, torch.optim.Adam. One thread each (torch.set_num_threads(1), one BLAS thread).

Before timing, the two must agree: logits of the batch (max |difference| printed), and the
parameters after one update of each from the same start (max |difference| printed).

Timing: CPU time per update (time.process_time; one thread, so one core's: on a shared machine
the time waited for a core is not counted), alternating minipg and torch in rounds, the median
of each side's per-round best; the best wall-clock of the same calls is printed beside it. Generation is timed the same way
for minipg (policy.generate of the batch's prompts) as information.

    python benchmarks/bench_lm_torch.py                  # float32 (the task's dtype)
    python benchmarks/bench_lm_torch.py --dtype float64
    python benchmarks/bench_lm_torch.py --smoke          # seconds; torch's half skipped without torch

PyTorch is optional and never a dependency of minipg: pip install torch (a CPU wheel).
Target: minipg's update no slower than PyTorch's.
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from minipg.algos import grpo
from minipg.core.optim import Adam
from minipg.lm.addition import AdditionTask, MAX_ANSWER_LEN, PROMPT_LEN
from minipg.lm.imitation import warm_start

clock = time.process_time


def make_batch(task, policy, config, seed):
    """(tokens, mask, rewards) of P prompts x G responses sampled by policy."""
    rng = np.random.default_rng(seed)
    P, G = config.num_prompts, config.group_size
    prompts, answers = task.sample_prompts(P, rng)
    tokens, mask = policy.generate(np.repeat(prompts, G, axis=0), MAX_ANSWER_LEN, rng=rng)
    rewards = task.reward(np.repeat(answers, G, axis=0), tokens).reshape(P, G)
    return tokens, mask, rewards


def best_of(function, repeats):
    """(best CPU seconds, best wall-clock seconds) of `repeats` calls, after a warm-up call."""
    function()
    best, best_wall = np.inf, np.inf
    for _ in range(repeats):
        start, wall_start = clock(), time.perf_counter()
        function()
        best = min(best, clock() - start)
        best_wall = min(best_wall, time.perf_counter() - wall_start)
    return best, best_wall


def torch_side(policy, tokens, mask, rewards, config, dtype):
    """(update(), logits(), params()): the same model and GRPO update in PyTorch, from minipg's
    current weights."""
    import torch

    torch.set_num_threads(1)
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    net = policy.net
    mlp = net.mlp
    token_index, position_index = net.window_indices(tokens, PROMPT_LEN)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = torch.nn.Embedding(net.vocab_size, net.embed_dim, dtype=torch_dtype)
            self.positions = torch.nn.Embedding(net.max_len + 1, net.embed_dim,
                                                dtype=torch_dtype)
            layers = []
            for l, (W, b) in enumerate(zip(mlp.weights, mlp.biases)):
                linear = torch.nn.Linear(W.shape[0], W.shape[1], dtype=torch_dtype)
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(W.T.copy()))
                    linear.bias.copy_(torch.from_numpy(b.copy()))
                layers.append(linear)
                if l < len(mlp.weights) - 1:
                    layers.append(torch.nn.Tanh())
            self.mlp = torch.nn.Sequential(*layers)
            with torch.no_grad():
                self.tokens.weight.copy_(torch.from_numpy(net.token_embedding.copy()))
                self.positions.weight.copy_(torch.from_numpy(net.position_embedding.copy()))

        def forward(self, token_index, position_index):
            h = self.tokens(token_index) + self.positions(position_index)    # (N, W, d)
            return self.mlp(h.flatten(1))                                     # (N, V)

    model = Model()
    optim = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    ti = torch.from_numpy(np.ascontiguousarray(token_index))
    pi = torch.from_numpy(np.ascontiguousarray(position_index))
    actions = torch.from_numpy(tokens[:, PROMPT_LEN:].reshape(-1, 1).copy())
    P, G = rewards.shape
    advantages = torch.from_numpy(
        grpo.group_advantages(rewards, config.scale, config.baseline, config.adv_eps)
        .reshape(P * G, 1)).to(torch_dtype)
    weights = torch.from_numpy(grpo.token_weights(mask, config.loss_agg)).to(torch_dtype)
    B, T = mask.shape

    def log_prob():
        logits = model(ti, pi)
        return torch.log_softmax(logits, -1).gather(1, actions).reshape(B, T)

    def update():
        with torch.no_grad():
            old_log_prob = log_prob()
        for _ in range(config.num_iterations):
            ratio = torch.exp(log_prob() - old_log_prob)
            unclipped = -advantages * ratio
            clipped = -advantages * torch.clamp(ratio, 1 - config.eps_low, 1 + config.eps_high)
            loss = (weights * torch.maximum(unclipped, clipped)).sum()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optim.step()

    def logits():
        with torch.no_grad():
            return model(ti, pi).numpy()

    def params():
        """Torch's parameters in minipg's flat layout."""
        with torch.no_grad():
            parts = [model.tokens.weight.numpy().ravel(), model.positions.weight.numpy().ravel()]
            for layer in model.mlp:
                if isinstance(layer, torch.nn.Linear):
                    parts += [layer.weight.numpy().T.ravel(), layer.bias.numpy().ravel()]
            return np.concatenate(parts)

    return update, logits, params, torch.__version__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--repeats", type=int, default=10, help="updates timed per round")
    parser.add_argument("--smoke", action="store_true",
                        help="one short round: checks that the script runs (torch's half "
                             "skipped when torch is not installed)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.repeats = 1, 2
    config = grpo.Config()
    task = AdditionTask(0)

    # GRPO's starting point in the task: imitation on 700 demonstrations (bench_grpo.py), so
    # that the groups hold both right and wrong answers and the gradient is not zero
    policy = task.make_policy(rng=0, dtype=args.dtype)
    warm_start(policy, task, 700, rng=0)
    tokens, mask, rewards = make_batch(task, policy, config, seed=1)
    start = policy.params.copy()
    optim = Adam(policy.params, config.learning_rate)
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("torch is not installed: the PyTorch half is skipped (pip install torch)")

    with threadpool_limits(limits=1, user_api="blas"):
        print(f"GRPO update of the addition task's policy, {args.dtype}, P = "
              f"{config.num_prompts} x G = {config.group_size} responses, "
              f"{config.num_iterations} gradient steps per update, 1 thread")
        if have_torch:
            # agreement, from the same weights: logits, then the parameters after one update
            update, logits, params, version = torch_side(policy, tokens, mask, rewards, config,
                                                         args.dtype)
            ours, _ = policy.net.forward(tokens, PROMPT_LEN)
            logit_gap = np.abs(ours.reshape(-1, ours.shape[-1]) - logits()).max()
            grpo.update(policy, optim, tokens, mask, PROMPT_LEN, rewards, config)
            update()
            param_gap = np.abs(policy.params - params()).max()
            moved = np.abs(policy.params - start).max()
            print(f"torch {version}: max |logits difference| {logit_gap:.2e}; after one update "
                  f"each, max |parameter difference| {param_gap:.2e}, while the update moved "
                  f"them by up to {moved:.2e}; {np.mean(grpo.all_equal_groups(rewards)):.0%} "
                  f"of the groups all equal, mean reward {rewards.mean():.2f}")
        minipg_update = lambda: grpo.update(policy, optim, tokens, mask, PROMPT_LEN, rewards,
                                            config)
        prompts = tokens[:, :PROMPT_LEN]
        generate = lambda: policy.generate(prompts, MAX_ANSWER_LEN, rng=0)
        print(f"{'round':>5} {'minipg ms':>10} {'torch ms':>9} {'torch/minipg':>12} "
              f"{'(wall: minipg':>14} {'torch':>6} {'ratio)':>6} {'minipg generate ms':>18}")
        rows = []
        for round_ in range(args.rounds):
            ours_s, ours_wall = best_of(minipg_update, args.repeats)
            theirs_s, theirs_wall = (best_of(update, args.repeats) if have_torch
                                     else (np.nan, np.nan))
            generate_s, _ = best_of(generate, args.repeats)
            rows.append((ours_s, theirs_s, generate_s))
            print(f"{round_:>5} {ours_s * 1e3:>10.2f} {theirs_s * 1e3:>9.2f} "
                  f"{theirs_s / ours_s:>12.2f} {ours_wall * 1e3:>14.2f} {theirs_wall * 1e3:>6.2f} "
                  f"{theirs_wall / ours_wall:>6.2f} {generate_s * 1e3:>18.2f}", flush=True)
    ours_ms, theirs_ms, generate_ms = (1e3 * np.median(column) for column in zip(*rows))
    if have_torch:
        print(f"median of the rounds' best: minipg {ours_ms:.2f} ms, torch {theirs_ms:.2f} ms "
              f"per update: torch/minipg {theirs_ms / ours_ms:.2f} (target >= 1: "
              f"{'met' if theirs_ms >= ours_ms else 'not met'}); minipg generates the batch "
              f"in {generate_ms:.2f} ms")
    else:
        print(f"median of the rounds' best: minipg {ours_ms:.2f} ms per update")
    return rows


if __name__ == "__main__":
    main()
