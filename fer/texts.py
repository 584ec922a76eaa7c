"""Texts said in more than one place (the app, model cards, the CLI): responsible use and the
citations behind it. Written once here."""

from __future__ import annotations

#: Why an expression is not an emotion, with its source.
EXPRESSION_NOT_EMOTION = (
    "Expression recognition reads facial movements, not inner states: a smile is not proof of happiness, "
    "and people differ across cultures, contexts and conditions (Barrett, Adolphs, Marsella, Martinez & "
    "Pollak 2019, *Psychological Science in the Public Interest* 20(1))."
)

#: What the law says about emotion recognition in the EU.
EU_AI_ACT = (
    "The EU AI Act prohibits AI systems that infer emotions of people in the workplace and in education "
    "institutions, except for medical or safety reasons (Art. 5(1)(f)), and requires people exposed to an "
    "emotion-recognition system to be told about it (Art. 50(3))."
)

#: How far to trust any answer.
ERRORS = (
    "Every answer can be wrong: the confusion statistics beside each answer say how often and in which "
    "direction, where they were measured. Accuracy drops for faces, lighting and cameras unlike the "
    "training data, and posed studio datasets overstate accuracy on everyday faces."
)

RESPONSIBLE_USE = f"""\
### Responsible use
- **Expression is not emotion.** {EXPRESSION_NOT_EMOTION}
- **Law.** {EU_AI_ACT} Do not use this demo to judge people; tell anyone in front of the camera what it does.
- **Error.** {ERRORS}
"""
