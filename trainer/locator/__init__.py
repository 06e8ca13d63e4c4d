"""The locator trainer: train, measure and export the locator (``trainer/locator/model.py``) on rendered scenes.

``digitcam locator train --out runs/locator`` renders a training set of scenes once (cached as .npz) and
trains with checkpoints every epoch (run it again to resume); ``export`` writes ``models/locator.tflite``
+ its manifest with the int8 conversion of ``trainer.export``. ``eval`` measures the exported model
through the device's own ``Locator`` on held-out scenes: box IoU, no-number scenes, and end to end with a
recognizer; ``views`` chooses the crop views that vote; ``sheet`` draws a contact sheet of annotated
scenes for a person to check. Numbers go to docs/LOCATOR.md.

Modules, bottom up: ``model`` (the network), ``examples`` (scenes and zoom windows as model inputs),
``targets`` (targets, losses, batches), ``train``, ``export``, ``measure``, ``views``, ``sheet``, ``cli``.
Nothing is imported here: ``trainer.locator.train`` and the others are imported by name.
"""
