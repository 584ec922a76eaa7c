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

#: Why the face prior's regions get the weights they get (`fer.saliency.FACE_PRIOR_REGIONS`): region →
#: the eye-tracking findings behind its weight. A rounded synthesis of published studies, not a fit to data.
FACE_PRIOR_EVIDENCE: dict[str, str] = {
    "eyes": (
        "observers spend approximately 40 % of their looking time on the eye region of face photographs, "
        "every other part receiving less (Janik, Wellens, Goldberg & DeLoache 1978, *Perceptual and Motor "
        "Skills* 47(3):857–858); the fixation-density peaks of about half of observers lie on one of the eyes "
        "(25 % left eye, 23 % right eye, observer's view; Arizpe, Walsh, Yovel & Baker 2017, *Vision Research* "
        "141:191–203)"
    ),
    "upper_nose": (
        "31 % of observers' density peaks lie on the nasion and bridge of the nose (Arizpe et al. 2017); the "
        "first two fixations during face recognition land near the centre of the nose (Hsiao & Cottrell 2008, "
        "*Psychological Science* 19(10):998–1006); fixations in expression judgements fall mostly on the eyes, "
        "upper and lower nose, nasion and upper lip (Schurgin, Nelson, Iida, Ohira, Chiao & Franconeri 2014, "
        "*Journal of Vision* 14(13):14)"
    ),
    "mouth": (
        "20 % of observers' peaks span the nose, philtrum and upper lip (Arizpe et al. 2017). The mouth gains "
        "weight for expressions shown there: it is fixated longer on happy faces, and about as much as the eyes "
        "on fearful and neutral ones, while the eyes dominate for sad and angry faces (Eisenbarth & Alpers 2011, "
        "*Emotion* 11(4):860–865; Schurgin et al. 2014: lips for joy, eyes for sadness); the prior does not know "
        "the expression, so it keeps the expression-neutral weights"
    ),
    "inner_face": "the remaining parts of the face each get less looking time than the eyes (Janik et al. 1978)",
}

#: The face prior in one line, with its sources in short (the app and the model card name it so).
FACE_PRIOR_SHORT = (
    "a model of human fixations on faces: five Gaussians on the detected eyes, upper nose, mouth and inner face, "
    "sized by the face, with region weights from eye-tracking studies (eyes ≈ 40 % of looking time, Janik et al. "
    "1978; density peaks on the eyes and nasion, Arizpe et al. 2017; the mouth more for happy faces, Eisenbarth & "
    "Alpers 2011, Schurgin et al. 2014); not a learned network"
)
