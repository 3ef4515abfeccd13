"""The memorisation filter on the tiny model: the people it was taught are held, never-seen ones are not."""

from __future__ import annotations

import pytest
import torch

from forgetd.filters.memorisation import memorisation
from forgetd.models import load_model
from forgetd.models.tiny import default_tiny_people, fact_probes
from forgetd.payload import DeletionPayload, Probe

pytestmark = pytest.mark.slow


def test_taught_people_are_held_and_strangers_are_not(tiny_model_dir):
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    people = default_tiny_people()
    taught = [DeletionPayload(texts=p.statements, probes=fact_probes([p])) for p in people[:2]]
    stranger = DeletionPayload(texts=["Zebulon Quayle was born in Tromso. Zebulon Quayle works as a juggler."],
                               probes=[Probe(prompt="Zebulon Quayle was born in", completion="Tromso"),
                                       Probe(prompt="Zebulon Quayle works as a", completion="juggler")])
    scores = memorisation(loaded.model, loaded.tokenizer, [taught[0], stranger, taught[1]])
    assert [s.held for s in scores] == [True, False, True]
    assert scores[0].recall == 1.0 and scores[1].recall == 0.0
    assert scores[0].extraction > scores[1].extraction
