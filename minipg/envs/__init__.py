"""Layer 2, environments: making them and collecting from them.

    make       vector envs from a registered id or a factory; the spaces a policy can handle
    outputs    what an env may return: finite numbers small enough to train on
    rollout    (T, N) rollouts of a vector env (NEXT_STEP autoreset, masks, bootstraps)
    groups     groups of whole episodes that share a reset seed (GRPO on an env)
    whole_episodes  one whole episode per env from its own reset (REINFORCE)
    noise      coloured (AR(1)) exploration noise for Gaussian policies
    episodes   evaluation: episodes of a policy, with a step limit

May import minipg.core and gymnasium.
"""
