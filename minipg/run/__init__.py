"""Layer 6, runs: everything between `minipg.train(...)` and the files a run leaves.

    loop        train(): the one training loop for every algorithm, and resume
    build       the parts of a run from its config and its one seed
    presets     tuned hyperparameters per (env, algorithm)
    snapshot    the training state: captured after every iteration, restored on resume
    stops       SIGINT, SIGTERM, SIGHUP between iterations; the message of an error that
                stopped a run; progress lines that a closed stdout does not stop
    rundir      run directories: claimed atomically, marked with a run id, locked, never
                overwritten by surprise
    checkpoint  the checkpoint format: written, recognised, read (never unpickled)
    env_state   the env's own state, pickled beside the checkpoint for a bit-for-bit resume
    files       atomic writes
    evaluate    evaluate a policy or a saved run

May import minipg.core, minipg.envs and minipg.algos.
"""
