"""Training: ``train(config)`` runs a ``DMENetConfig`` / ``DoFNetConfig`` (``training.config``)."""


def train(config):
    """Run one training job (see ``tf_defocus.training.runner.train``)."""
    from tf_defocus.training.runner import train as run
    return run(config)
