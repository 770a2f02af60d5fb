"""Layer 3, the algorithms: one module per algorithm, its Config and its update (no loops).

    reinforce                   learns from whole episodes, one per env (envs/whole_episodes.py)
    a2c, ppo, trpo              learn from (T, N) rollouts (minipg/envs/rollout.py)
    grpo_gym                    GRPO on groups of episodes that share a reset seed
    grpo                        GRPO's math (group advantages, the k3 KL, the token loss) and
                                its update on token sequences (the language model: minipg/lm/)
    config                      the Config base classes, one docstring per field
    registry                    ALGOS: the algorithms by the name a run records

May import minipg.core. Never the envs, the runs or the tools: an update is a function of a batch.
"""
