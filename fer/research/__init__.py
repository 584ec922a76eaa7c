"""Research side of `fer`: training, evaluation, datasets, the paper's protocol, model cards,
saliency training and saliency metrics.

Nothing is imported here eagerly: the inference core (`fer.load`, the CLI's `predict`) never pays
for torch optimisers, dataset parsers or plotting it does not use.
"""
