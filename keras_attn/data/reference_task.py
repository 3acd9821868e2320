"""The built-in demo task: which noun does "it" refer to? Seeded, offline, and needs attention.

The walkthrough's example "The dog loved the toy, it was very excited." is the template. Each
sentence names one animal and one object, in random order, then says "it was very <adjective>".
An animate adjective (excited, hungry, ...) makes "it" the animal; an inanimate one (broken,
empty, ...) makes "it" the object. The label is which noun "it" refers to:

    class 0, "first noun":  "The dog hit a box, it was very hungry."
    class 1, "second noun": "The box was near the dog, it was very hungry."

So label = (animal comes first) XOR (adjective is animate). Swapping the two noun phrases keeps
every word and flips the label, and the verbs, describers and openings are drawn independently
of the order: a bag of words is exactly at chance. A model must relate "it"/the adjective to the
matching noun *and* know where that noun stands: self-attention plus position embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_attn.data.records import TextDataset

REFERENCE_TASK_CLASS_NAMES = ("first noun", "second noun")

ANIMALS = ("dog", "cat", "bird", "horse", "rabbit", "mouse", "fox", "duck", "goat", "cow")
OBJECTS = ("toy", "ball", "box", "car", "cup", "bottle", "lamp", "chair", "bucket", "kettle")
# Adjectives that only one of the two kinds of noun can take.
ANIMATE_ADJECTIVES = ("excited", "hungry", "sleepy", "happy", "scared", "tired", "curious",
                      "thirsty")
INANIMATE_ADJECTIVES = ("broken", "empty", "shiny", "rusty", "cracked", "dented", "hollow",
                        "unplugged")
# Verbs that read naturally in both directions ("the dog hit the ball", "the ball hit the dog"),
# so the verb says nothing about which noun comes first.
VERBS = ("was near", "was next to", "was behind", "was beside", "was under", "touched",
         "bumped into", "hit", "passed", "was close to")
# Describers fit any noun; like every noun they start with a consonant, so "a" always fits.
DESCRIBERS = ("big", "small", "little", "large", "tiny", "brown", "white", "black", "gray")
DETERMINERS = ("the", "a", "my", "that")
OPENINGS = ("yesterday", "today", "then", "suddenly", "later", "this morning")


@dataclass(frozen=True)
class ReferenceSentence:
    """One example of the reference task, kept in parts so its structure can be checked.

    Args:
        opening: an opening word such as "yesterday", or "" for none.
        animal: the animal's noun phrase, e.g. "the big dog".
        thing: the object's noun phrase, e.g. "a ball".
        verb: the verb between the two noun phrases.
        animal_first: whether the animal's phrase comes first.
        adjective: the adjective after "it was very"; its kind decides what "it" refers to.
    """

    opening: str
    animal: str
    thing: str
    verb: str
    animal_first: bool
    adjective: str

    @property
    def refers_to_animal(self) -> bool:
        """Whether "it" is the animal (the adjective is one only an animal can take)."""
        return self.adjective in ANIMATE_ADJECTIVES

    @property
    def label(self) -> int:
        """0 when "it" refers to the first noun, 1 when it refers to the second."""
        return int(self.animal_first != self.refers_to_animal)

    @property
    def text(self) -> str:
        """The sentence, e.g. ``"Yesterday, the dog hit a box, it was very sleepy."``."""
        first, second = (self.animal, self.thing) if self.animal_first else (self.thing,
                                                                            self.animal)
        sentence = f"{first} {self.verb} {second}, it was very {self.adjective}."
        if self.opening:
            sentence = f"{self.opening}, {sentence}"
        return sentence[0].upper() + sentence[1:]


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _noun_phrase(rng: np.random.Generator, noun: str) -> str:
    """A determiner, a describer half of the time, then the noun: "the big dog", "a ball"."""
    words = [_pick(rng, DETERMINERS), _pick(rng, DESCRIBERS) if rng.random() < 0.5 else "", noun]
    return " ".join(word for word in words if word)


def sample_reference_sentence(
    rng: np.random.Generator, animal_first: bool, refers_to_animal: bool
) -> ReferenceSentence:
    """Draw one sentence with the given noun order and referent.

    Every word is drawn the same way whatever ``animal_first`` is, which is what keeps a bag of
    words at chance.

    Args:
        rng: the random generator (``numpy.random.default_rng(seed)``).
        animal_first: whether the animal is named first.
        refers_to_animal: whether the adjective, and so "it", refers to the animal.

    Returns:
        A ``ReferenceSentence``; ``.text`` and ``.label`` are the example.
    """
    return ReferenceSentence(
        opening=_pick(rng, OPENINGS) if rng.random() < 0.5 else "",
        animal=_noun_phrase(rng, _pick(rng, ANIMALS)),
        thing=_noun_phrase(rng, _pick(rng, OBJECTS)),
        verb=_pick(rng, VERBS),
        animal_first=animal_first,
        adjective=_pick(rng, ANIMATE_ADJECTIVES if refers_to_animal else INANIMATE_ADJECTIVES),
    )


def make_reference_task(num_examples: int, seed: int = 0) -> TextDataset:
    """Make the reference task: which noun does "it" refer to?

    The four combinations of (noun order, referent) occur equally often (up to one when
    ``num_examples`` is not a multiple of 4), so the two classes are balanced to within one
    example. The same seed gives the same texts and labels in every process.

    Args:
        num_examples: how many sentences to make (>= 1).
        seed: the seed of ``numpy.random.default_rng``.

    Returns:
        A ``TextDataset`` with ``class_names == ["first noun", "second noun"]``.

    Example:
        >>> make_reference_task(2, seed=0).class_names
        ['first noun', 'second noun']
    """
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1:
        raise ValueError("num_examples must be a positive integer. "
                         f"Received: num_examples={num_examples!r}")
    rng = np.random.default_rng(seed)
    # (animal_first, refers_to_animal) in an order whose labels alternate 0, 1, 0, 1, so that
    # taking the first num_examples % 4 combinations once more keeps the classes balanced.
    combinations = ((False, False), (False, True), (True, True), (True, False))
    sentences = [sample_reference_sentence(rng, *combinations[cell])
                 for cell in rng.permutation(np.arange(num_examples) % 4).tolist()]
    return TextDataset([s.text for s in sentences], np.array([s.label for s in sentences]),
                       list(REFERENCE_TASK_CLASS_NAMES))
