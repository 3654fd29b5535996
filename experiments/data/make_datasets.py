"""Write the project's evaluation sets (deterministic; re-run to regenerate):

- dsa_qa.jsonl: distractor / evidence / question prompts, the answer to explain, and the
  character spans of the distractor and evidence segments (computed while building the text).
- plain.jsonl: facts, arithmetic, code and coreference prompts with their answer.

Each line: {"id", "prompt", "answer", "segments"?: {"distractor": [a, b], "evidence": [a, b]}}.
The evaluation appends " " + answer and explains the answer's first token (teacher-forced).
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent

FACTS = [  # (evidence sentence, question, answer)
    ("Paris is the capital city of France.", "What is the capital of France?", "Paris"),
    ("Tokyo is the capital city of Japan.", "What is the capital of Japan?", "Tokyo"),
    ("Rome is the capital city of Italy.", "What is the capital of Italy?", "Rome"),
    ("Madrid is the capital city of Spain.", "What is the capital of Spain?", "Madrid"),
    ("Berlin is the capital city of Germany.", "What is the capital of Germany?", "Berlin"),
    ("Photosynthesis takes place in the leaves of a plant.", "Where does photosynthesis take place?", "leaves"),
    ("Water freezes into ice when it gets very cold.", "What does water turn into when it freezes?", "ice"),
    ("The heart pumps blood through the body.", "Which organ pumps blood?", "heart"),
    ("Bees collect nectar to make honey.", "What do bees make from nectar?", "honey"),
    ("The Sun is the star at the center of our solar system.", "What star is at the center of our solar system?", "Sun"),
    ("Cows give milk that people drink.", "Which animal gives milk?", "Cows"),
    ("Penguins live in the cold south near Antarctica.", "Which birds live near Antarctica?", "Penguins"),
    ("The Moon orbits the Earth once a month.", "What orbits the Earth once a month?", "Moon"),
    ("Lungs let us breathe in oxygen.", "Which organs let us breathe?", "Lungs"),
    ("A spider has eight legs.", "How many legs does a spider have?", "eight"),
    ("Grass is green because of chlorophyll.", "What makes grass green?", "chlorophyll"),
    ("Ice cream is kept in the freezer so it stays cold.", "Where is ice cream kept?", "freezer"),
    ("Fish breathe underwater using gills.", "What do fish use to breathe?", "gills"),
    ("The piano is a musical instrument with black and white keys.", "Which instrument has black and white keys?", "piano"),
    ("Bread is baked in an oven.", "Where is bread baked?", "oven"),
    ("Shakespeare wrote the play Hamlet.", "Who wrote Hamlet?", "Shakespeare"),
    ("Einstein developed the theory of relativity.", "Who developed the theory of relativity?", "Einstein"),
    ("Mount Everest is the highest mountain on Earth.", "What is the highest mountain on Earth?", "Everest"),
    ("The Nile is the longest river in Africa.", "What is the longest river in Africa?", "Nile"),
    ("Gold is a yellow metal used in jewelry.", "Which yellow metal is used in jewelry?", "Gold"),
    ("Salt makes food taste salty.", "What makes food taste salty?", "Salt"),
    ("Rain falls from clouds in the sky.", "Where does rain fall from?", "clouds"),
    ("A kangaroo carries its baby in a pouch.", "Where does a kangaroo carry its baby?", "pouch"),
    ("Doctors work in hospitals to help sick people.", "Where do doctors work?", "hospitals"),
    ("Coffee is made from roasted beans.", "What is coffee made from?", "beans"),
    ("Wool comes from sheep.", "Which animal does wool come from?", "sheep"),
    ("Plants need sunlight to grow.", "What do plants need to grow?", "sunlight"),
    ("The clock on the wall shows the time.", "What shows the time on the wall?", "clock"),
    ("Elephants are the largest land animals.", "What are the largest land animals?", "Elephants"),
    ("Seven days make one week.", "How many days make one week?", "Seven"),
]

DISTRACTORS = [
    "The old captain walked along the harbour and remembered the storms of his youth.",
    "On Sunday the family drove to the lake and had a picnic under the trees.",
    "The detective read the letter twice before putting it back in the drawer.",
    "A young girl painted her bedroom blue while her brother played the guitar.",
    "The villagers gathered in the square to hear the mayor's long speech.",
    "After the long winter the farmer repaired the fence and fed the horses.",
    "The train was late, so the travellers waited in the cold station.",
]


def dsa_items() -> list[dict]:
    items = []
    for j in range(3):  # every fact once before any repeats, so --limit N gives N different facts
        for i, (evidence, question, answer) in enumerate(FACTS):
            distractor = DISTRACTORS[(i + 2 * j) % len(DISTRACTORS)]
            prompt = ""
            d_span = (len(prompt), len(prompt) + len(distractor))
            prompt += distractor + " "
            e_span = (len(prompt), len(prompt) + len(evidence))
            prompt += evidence + " Question: " + question + " Answer:"
            assert prompt[slice(*d_span)] == distractor and prompt[slice(*e_span)] == evidence
            items.append({"id": f"dsa-{i:02d}-{j}", "prompt": prompt, "answer": answer,
                          "segments": {"distractor": list(d_span), "evidence": list(e_span)}})
    return items


PLAIN = [
    ("The capital of France is", "Paris"), ("The capital of England is", "London"),
    ("The color of the sky on a clear day is", "blue"), ("The opposite of hot is", "cold"),
    ("The opposite of up is", "down"), ("The first day of the week is", "Monday"),
    ("Monday, Tuesday, Wednesday,", "Thursday"), ("January, February,", "March"),
    ("One, two, three, four,", "five"), ("A, B, C, D,", "E"),
    ("2 + 2 =", "4"), ("3 + 4 =", "7"), ("10 - 3 =", "7"), ("5 * 2 =", "10"), ("1 + 1 =", "2"),
    ("The cat says", "meow"), ("The dog says", "woof"), ("Cows eat", "grass"),
    ("The chemical symbol for water is", "H"), ("The largest ocean on Earth is the", "Pacific"),
    ("def add(a, b):\n    return a", "+"), ("for i in range(10):\n    print(", "i"),
    ("import numpy as", "np"), ("x = [1, 2, 3]\nprint(len(", "x"), ("if x > 0:\n    print(\"positive\")\nelse:\n    print(\"", "negative"),
    ("Alice gave Bob a book. Then Bob thanked", "Alice"), ("John met Mary at the park. She smiled at", "John"),
    ("The trophy did not fit in the suitcase because the suitcase was too", "small"),
    ("Tom has a red car and Anna has a blue car. The red car belongs to", "Tom"),
    ("My brother is a doctor. He works at the", "hospital"), ("Sarah lost her keys, so she could not open the", "door"),
    ("Birds can fly because they have", "wings"), ("At night we sleep in a", "bed"),
    ("We read books in the", "library"), ("The teacher wrote on the", "board"),
    ("In winter it is often", "cold"), ("People drink coffee in the", "morning"),
    ("The Earth goes around the", "Sun"), ("Water boils at 100 degrees", "Celsius"),
    ("The Statue of Liberty is in New", "York"), ("The Eiffel Tower is in", "Paris"),
    ("Romeo and Juliet was written by William", "Shakespeare"), ("The fastest land animal is the", "che"),
    ("Ten, nine, eight, seven,", "six"), ("Red, orange, yellow, green,", "blue"),
    ("The plural of mouse is", "mice"), ("The past tense of go is", "went"),
    ("Happy birthday to", "you"), ("Once upon a", "time"), ("Thank you very", "much"),
    ("Knock knock. Who's", "there"), ("Peter Piper picked a peck of pickled", "peppers"),
]


def plain_items() -> list[dict]:
    return [{"id": f"plain-{i:02d}", "prompt": p, "answer": a} for i, (p, a) in enumerate(PLAIN)]


def main() -> None:
    for name, items in (("dsa_qa.jsonl", dsa_items()), ("plain.jsonl", plain_items())):
        with open(HERE / name, "w", encoding="utf-8") as fh:
            for it in items:
                fh.write(json.dumps(it, ensure_ascii=False) + "\n")
        print(name, len(items))


if __name__ == "__main__":
    main()
