"""Layer 4, the language model: policy gradients on token sequences.

    sequence    a tiny autoregressive model (SequenceNet) and its policy over tokens
    addition    two-digit addition: prompts, answers and the verifier that rewards them
    imitation   the warm start: cross-entropy on demonstrations
    grpo        GRPO's loop on the model (the update itself is minipg.algos.grpo.update)
    token_ppo   PPO with a per-token critic on the same task, for comparison

May import minipg.core and minipg.algos.
"""
