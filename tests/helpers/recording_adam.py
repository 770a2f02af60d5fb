"""Adam that records each gradient it is given and the parameters it was taken at: the tests of
whole updates check every recorded step against finite differences of the loss."""
from minipg.core.optim import Adam


class RecordingAdam(Adam):
    """Adam that records each gradient and the parameters it was taken at."""

    def __init__(self, params, learning_rate):
        super().__init__(params, learning_rate)
        self.grads, self.at = [], []

    def step(self, grad, grad_checked=False):
        self.grads.append(grad.copy())
        self.at.append(self.params.copy())
        super().step(grad, grad_checked=grad_checked)
