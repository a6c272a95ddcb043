"""A stand-in for constriction where it cannot be installed (Linux aarch64 has no
constriction 0.5.0 wheel). It only names the model families vlaecodec.codec builds;
every coder call is served by transcript.ReplayCoder, which checks that the call's
parameters are exactly those recorded on a machine with the real coder."""


class _Family:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _Namespace:
    pass


stream = _Namespace()
stream.model = _Namespace()
stream.stack = _Namespace()
for _name in ("Categorical", "Bernoulli", "Uniform", "QuantizedGaussian"):
    setattr(stream.model, _name, type(_name, (_Family,), {}))


def _no_coder(*args, **kwargs):
    raise RuntimeError("stub constriction: no real coder here; use transcript.ReplayCoder")


stream.stack.AnsCoder = _no_coder
