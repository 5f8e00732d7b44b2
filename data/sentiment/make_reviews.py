"""Regenerate reviews.tsv: short review sentences written for rnncli, `sentence<TAB>label`.

Openings, subjects and closings are shared by both labels in equal measure, so only the verdict
(the sentiment words) tells positive from negative: a model trained on this sample has to learn
words like "awful" and "delicious", not the template around them.

    python data/sentiment/make_reviews.py > data/sentiment/reviews.tsv
"""

import random

OPENINGS = ["", "Honestly, ", "I have to say ", "After two visits, ", "Last week ", "To be fair, ",
            "In short, ", "For what it costs, ", "My sister agrees: ", "Three days in, "]
SUBJECTS = ["the soup", "the pasta", "the curry", "the bread", "the coffee", "the waiter", "the staff",
            "the room", "the bed", "the view", "the phone", "the charger", "the battery", "the screen",
            "the headphones", "the keyboard", "the camera", "the delivery", "the manual", "the app"]
POSITIVE = ["was delicious", "is excellent", "works perfectly", "is worth every penny", "was friendly and quick",
            "exceeded my expectations", "is lovely", "is great", "was spotless", "is a real pleasure",
            "is fantastic", "impressed us", "feels solid and well made", "was perfect", "is simply wonderful",
            "made my day", "is the best I have had", "was a pleasant surprise", "is superb", "works great"]
NEGATIVE = ["was awful", "is terrible", "broke after a week", "was a waste of money", "was rude and slow",
            "fell short of my expectations", "is dreadful", "is poor", "was dirty", "is a real letdown",
            "is horrible", "disappointed us", "feels cheap and flimsy", "was cold and bland", "is simply useless",
            "ruined my day", "is the worst I have had", "was an unpleasant surprise", "is awful", "stopped working"]
CLOSINGS = ["", " That is all.", " I will say no more.", " We went on a Tuesday.", " Make of that what you will.",
            " Just my opinion.", " Nothing else to add."]


def sentences(n_per_label: int = 160, seed: int = 7):
    rng = random.Random(seed)
    seen = set()
    for label, verdicts in (("pos", POSITIVE), ("neg", NEGATIVE)):
        count = 0
        while count < n_per_label:
            opening = rng.choice(OPENINGS)
            text = f"{opening}{rng.choice(SUBJECTS)} {rng.choice(verdicts)}.{rng.choice(CLOSINGS)}"
            text = text[0].upper() + text[1:]
            if text not in seen:
                seen.add(text)
                count += 1
                yield text, label


if __name__ == "__main__":
    rows = list(sentences())
    random.Random(11).shuffle(rows)
    for text, label in rows:
        print(f"{text}\t{label}")
