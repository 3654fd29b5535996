"""Write the project's evaluation sets (deterministic; re-run to regenerate):

- dsa_qa.jsonl: 105 distractor / evidence / question prompts. Each is
  `distractor + " " + evidence + " Question: " + question + " Answer: " + stem`, where the stem
  restates the question as a sentence that the answer completes ("... Answer: The capital of
  France is"), and the target is the answer's first token. Why the stem: SmolLM2-135M-Instruct
  answers a bare "Answer:" with a newline (0/105 answers top-1), so explaining the answer
  token there would explain a token the model does not predict. With the stem the model puts
  the answer top-1 in 89/105 prompts and in its top-5 in 105/105; without the evidence sentence
  only 32/105 top-1 (checked with check_with_model.py), so the evidence is what the prediction
  depends on. 60 facts are common knowledge (geography, science, people, food, sport,
  technology), 45 are fictional ("Tom keeps his bicycle in the garage") so that only the
  evidence can give the answer. 24 distractor sentences (narrative, never holding the answer).
  Character spans of the distractor and evidence are recorded while the text is built.
  Position control: every item is written twice. Lines 1-105 are the items above, distractor
  first (`"order": "distractor_first"`, ids dsa-000 .. dsa-104, otherwise byte-identical to the
  set before the control was added, so earlier results stay comparable); lines 106-210 are the
  same items with the two passages swapped, `evidence + " " + distractor + " Question: ..."`
  (`"order": "evidence_first"`, id `<base id>-swap`, `"base_id"`: the distractor-first item's
  id). The question and the answer stem after the passages are unchanged. An item and its swap
  share the base item's number, hence the dev/test half (even number: dev, odd: test; see
  heta_lite/faithfulness/datasets.py).
- plain.jsonl: 55 prompts: 29 facts, 7 arithmetic, 8 code, 11 multi-sentence coreference
  (47/55 with the answer in the model's top-5, 34 top-1; the rest are reported separately).

Each line: {"id", "base_id"?, "kind", "order"?, "prompt", "answer", "sep"?, "segments"?:
{"distractor": [a, b], "evidence": [a, b]}}. The evaluation explains the first token of the answer in the text
`prompt + sep + answer` (sep defaults to " "; "" where code has no space), teacher-forced.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent

FACTS = [  # (evidence sentence, question, answer stem, answer); the stem restates the question
    # geography
    ("Paris is the capital city of France.", "What is the capital of France?", "The capital of France is", "Paris"),
    ("Tokyo is the capital city of Japan.", "What is the capital of Japan?", "The capital of Japan is", "Tokyo"),
    ("Rome is the capital city of Italy.", "What is the capital of Italy?", "The capital of Italy is", "Rome"),
    ("Madrid is the capital city of Spain.", "What is the capital of Spain?", "The capital of Spain is", "Madrid"),
    ("Berlin is the capital city of Germany.", "What is the capital of Germany?", "The capital of Germany is", "Berlin"),
    ("Cairo is the capital city of Egypt.", "What is the capital of Egypt?", "The capital of Egypt is", "Cairo"),
    ("Ottawa is the capital city of Canada.", "What is the capital of Canada?", "The capital of Canada is", "Ottawa"),
    ("Mount Everest is the highest mountain on Earth.", "What is the highest mountain on Earth?", "The highest mountain on Earth is Mount", "Everest"),
    ("The Nile is the longest river in Africa.", "What is the longest river in Africa?", "The longest river in Africa is the", "Nile"),
    ("The Pacific is the largest ocean on Earth.", "What is the largest ocean?", "The largest ocean is the", "Pacific"),
    ("The Sahara is a huge hot desert in Africa.", "Which desert is in Africa?", "The desert in Africa is the", "Sahara"),
    ("Australia is both a country and a continent.", "Which country is also a continent?", "The country that is also a continent is", "Australia"),
    # science and nature
    ("Photosynthesis takes place in the leaves of a plant.", "Where does photosynthesis take place?", "Photosynthesis takes place in the", "leaves"),
    ("Water freezes into ice when it gets very cold.", "What does water turn into when it freezes?", "When water freezes it turns into", "ice"),
    ("The heart pumps blood through the body.", "Which organ pumps blood?", "The organ that pumps blood is the", "heart"),
    ("Bees collect nectar to make honey.", "What do bees make from nectar?", "From nectar, bees make", "honey"),
    ("The Moon orbits the Earth once a month.", "What orbits the Earth once a month?", "The Earth is orbited once a month by the", "Moon"),
    ("A spider has eight legs.", "How many legs does a spider have?", "A spider has", "eight"),
    ("Grass is green because of chlorophyll.", "What makes grass green?", "Grass is green because of", "chlorophyll"),
    ("Fish breathe underwater using gills.", "What do fish use to breathe?", "Fish breathe using", "gills"),
    ("Plants need sunlight to grow.", "What do plants need to grow?", "To grow, plants need", "sunlight"),
    ("Elephants are the largest land animals.", "What are the largest land animals?", "The largest land animals are", "elephants"),
    ("Iron rusts when it is left in wet air.", "Which metal rusts in wet air?", "The metal that rusts in wet air is", "iron"),
    ("Sound travels more slowly than light.", "What travels faster than sound?", "Sound travels more slowly than", "light"),
    ("Diamonds are made of carbon.", "What are diamonds made of?", "Diamonds are made of", "carbon"),
    ("Bats use echoes to find their way in the dark.", "What do bats use to find their way?", "To find their way, bats use", "echoes"),
    ("A caterpillar turns into a butterfly.", "What does a caterpillar turn into?", "A caterpillar turns into a", "butterfly"),
    ("Frogs lay their eggs in ponds.", "Where do frogs lay their eggs?", "Frogs lay their eggs in", "ponds"),
    ("Owls hunt mice at night.", "What do owls hunt at night?", "At night, owls hunt", "mice"),
    ("Volcanoes erupt with hot lava.", "What comes out of volcanoes?", "Volcanoes erupt with hot", "lava"),
    ("The camel stores fat in its hump.", "Where does a camel store fat?", "A camel stores fat in its", "hump"),
    ("Oxygen is the gas that we breathe in.", "Which gas do we breathe in?", "The gas we breathe in is", "oxygen"),
    # people and culture
    ("Shakespeare wrote the play Hamlet.", "Who wrote Hamlet?", "Hamlet was written by", "Shakespeare"),
    ("Einstein developed the theory of relativity.", "Who developed the theory of relativity?", "The theory of relativity was developed by", "Einstein"),
    ("Mozart composed music when he was a small child.", "Who composed music as a small child?", "As a small child, music was composed by", "Mozart"),
    ("Picasso painted many famous pictures in Paris.", "Who painted many pictures in Paris?", "Many pictures in Paris were painted by", "Picasso"),
    ("Newton described the law of gravity.", "Who described the law of gravity?", "The law of gravity was described by", "Newton"),
    ("Columbus sailed across the Atlantic in 1492.", "Who sailed across the Atlantic in 1492?", "In 1492 the Atlantic was crossed by", "Columbus"),
    ("Darwin wrote about evolution and natural selection.", "Who wrote about evolution?", "Evolution was written about by", "Darwin"),
    ("Edison worked on the electric light bulb.", "Who worked on the light bulb?", "The light bulb was worked on by", "Edison"),
    # food and everyday life
    ("Bread is baked in an oven.", "Where is bread baked?", "Bread is baked in an", "oven"),
    ("Coffee is made from roasted beans.", "What is coffee made from?", "Coffee is made from roasted", "beans"),
    ("Wool comes from sheep.", "Which animal does wool come from?", "Wool comes from", "sheep"),
    ("Cheese is made from milk.", "What is cheese made from?", "Cheese is made from", "milk"),
    ("Pasta is a famous food from Italy.", "Which country is pasta from?", "Pasta comes from", "Italy"),
    ("Tea leaves are dried before people brew them.", "What is dried before brewing?", "Before brewing, people dry the tea", "leaves"),
    ("Ice cream is kept in the freezer so it stays cold.", "Where is ice cream kept?", "Ice cream is kept in the", "freezer"),
    ("Soup is eaten with a spoon.", "What is soup eaten with?", "Soup is eaten with a", "spoon"),
    ("Rice is the main food for many people in Asia.", "What is the main food for many people in Asia?", "For many people in Asia the main food is", "rice"),
    ("Lemons taste very sour.", "Which fruit tastes sour?", "The fruit that tastes sour is the", "lemon"),
    # sport and games
    ("In tennis the players hit a ball over a net.", "What do tennis players hit the ball over?", "Tennis players hit the ball over a", "net"),
    ("Chess is played on a board with sixty-four squares.", "Which game is played on sixty-four squares?", "The game played on sixty-four squares is", "chess"),
    ("A football team has eleven players on the field.", "How many players does a football team have on the field?", "A football team has", "eleven"),
    ("Swimmers race in a pool.", "Where do swimmers race?", "Swimmers race in a", "pool"),
    ("Golf players try to hit the ball into a hole.", "Where do golf players hit the ball?", "Golf players hit the ball into a", "hole"),
    # technology
    ("A keyboard is used to type letters into a computer.", "What is used to type letters?", "Letters are typed with a", "keyboard"),
    ("Python is a popular programming language.", "Which programming language is popular?", "A popular programming language is", "Python"),
    ("A camera is used to take photos.", "What is used to take photos?", "Photos are taken with a", "camera"),
    ("Trains run on steel rails.", "What do trains run on?", "Trains run on steel", "rails"),
    ("Aeroplanes land at an airport.", "Where do aeroplanes land?", "Aeroplanes land at an", "airport"),
    # fictional facts: only the evidence can give the answer
    ("Tom keeps his bicycle in the garage.", "Where does Tom keep his bicycle?", "Tom keeps his bicycle in the", "garage"),
    ("Maria's favourite colour is purple.", "What is Maria's favourite colour?", "Maria's favourite colour is", "purple"),
    ("The dog belonging to the Smiths is called Rex.", "What is the Smiths' dog called?", "The Smiths' dog is called", "Rex"),
    ("Anna plays the violin in the school orchestra.", "Which instrument does Anna play?", "Anna plays the", "violin"),
    ("The meeting will take place on Friday.", "On which day is the meeting?", "The meeting is on", "Friday"),
    ("Leo was born in the city of Lisbon.", "Where was Leo born?", "Leo was born in", "Lisbon"),
    ("The secret password is banana.", "What is the secret password?", "The secret password is", "banana"),
    ("Professor Grant teaches chemistry at the university.", "What does Professor Grant teach?", "Professor Grant teaches", "chemistry"),
    ("The red box contains twelve apples.", "How many apples are in the red box?", "The red box contains", "twelve"),
    ("Sophie drives a green truck to work.", "What colour is Sophie's truck?", "Sophie's truck is", "green"),
    ("The museum opens at nine in the morning.", "When does the museum open?", "The museum opens at", "nine"),
    ("Jack's sister works as a pilot.", "What is the job of Jack's sister?", "Jack's sister works as a", "pilot"),
    ("The town of Millbrook is famous for its cheese.", "What is Millbrook famous for?", "Millbrook is famous for its", "cheese"),
    ("Oliver lost his wallet at the cinema.", "Where did Oliver lose his wallet?", "Oliver lost his wallet at the", "cinema"),
    ("The blue notebook belongs to Emma.", "Who does the blue notebook belong to?", "The blue notebook belongs to", "Emma"),
    ("The key to the shed is under the mat.", "Where is the key to the shed?", "The key to the shed is under the", "mat"),
    ("Our new neighbour comes from Brazil.", "Where does the new neighbour come from?", "The new neighbour comes from", "Brazil"),
    ("The train to the coast leaves from platform four.", "Which platform does the train leave from?", "The train leaves from platform", "four"),
    ("Grandma keeps her cookies in a tin jar.", "Where does Grandma keep her cookies?", "Grandma keeps her cookies in a tin", "jar"),
    ("The winner of the race was a boy named Sam.", "Who won the race?", "The race was won by", "Sam"),
    ("Lucy is allergic to peanuts.", "What is Lucy allergic to?", "Lucy is allergic to", "peanuts"),
    ("The castle on the hill was built of granite.", "What was the castle built of?", "The castle was built of", "granite"),
    ("Mr. Brown's cat sleeps on the sofa.", "Where does Mr. Brown's cat sleep?", "Mr. Brown's cat sleeps on the", "sofa"),
    ("The bakery sells fresh croissants every morning.", "What does the bakery sell?", "The bakery sells fresh", "croissants"),
    ("Nina's brother studies medicine in Vienna.", "Where does Nina's brother study?", "Nina's brother studies in", "Vienna"),
    ("The hikers camped beside a quiet lake.", "Where did the hikers camp?", "The hikers camped beside a quiet", "lake"),
    ("The company's new office is in Chicago.", "Where is the company's new office?", "The company's new office is in", "Chicago"),
    ("Ben fixed the broken chair with glue.", "What did Ben fix the chair with?", "Ben fixed the chair with", "glue"),
    ("The parrot in the shop can say hello.", "What can the parrot say?", "The parrot can say", "hello"),
    ("The lighthouse light is painted yellow.", "What colour is the lighthouse light?", "The lighthouse light is", "yellow"),
    ("Kate wrote her essay about dolphins.", "What did Kate write her essay about?", "Kate wrote her essay about", "dolphins"),
    ("The treasure was buried under an oak tree.", "Where was the treasure buried?", "The treasure was buried under an oak", "tree"),
    ("The club meets every Tuesday evening.", "When does the club meet?", "The club meets every", "Tuesday"),
    ("Uncle Pete grows tomatoes in his garden.", "What does Uncle Pete grow?", "Uncle Pete grows", "tomatoes"),
    ("The spaceship was named Aurora.", "What was the spaceship named?", "The spaceship was named", "Aurora"),
    ("The little girl's teddy bear is called Biscuit.", "What is the teddy bear called?", "The teddy bear is called", "Biscuit"),
    ("The runner drank orange juice after the marathon.", "What did the runner drink?", "After the marathon the runner drank orange", "juice"),
    ("The author signed books at the library.", "Where did the author sign books?", "The author signed books at the", "library"),
    ("Our school bus is driven by Mrs. Lee.", "Who drives the school bus?", "The school bus is driven by Mrs.", "Lee"),
    ("The farmer sold his pumpkins at the market.", "What did the farmer sell?", "At the market the farmer sold his", "pumpkins"),
    ("The gardener planted roses near the gate.", "What did the gardener plant?", "Near the gate the gardener planted", "roses"),
    ("The old clock in the hall was made in Switzerland.", "Where was the clock made?", "The clock was made in", "Switzerland"),
    ("Max hid the chocolate in the cupboard.", "Where did Max hide the chocolate?", "Max hid the chocolate in the", "cupboard"),
    ("The band played jazz at the wedding.", "What did the band play at the wedding?", "At the wedding the band played", "jazz"),
    ("The hotel room had a view of the mountains.", "What did the hotel room have a view of?", "The hotel room had a view of the", "mountains"),
]

DISTRACTORS = [
    "The old captain walked along the harbour and remembered the storms of his youth.",
    "On Sunday the family drove to the lake and had a picnic under the trees.",
    "The detective read the letter twice before putting it back in the drawer.",
    "A young girl painted her bedroom blue while her brother played the guitar.",
    "The villagers gathered in the square to hear the mayor's long speech.",
    "After the long winter the farmer repaired the fence and fed the horses.",
    "The train was late, so the travellers waited in the cold station.",
    "Two students argued about the rules of the game until the bell rang.",
    "The chef tasted the sauce and added a pinch of pepper.",
    "Heavy clouds rolled over the hills as the shepherd counted his flock.",
    "A small boat drifted slowly past the fishermen on the pier.",
    "The nurse checked the list again before she switched off the lamp.",
    "Our neighbour spent the whole afternoon washing his old car.",
    "The children built a snowman and gave it a long scarf.",
    "At the end of the concert the audience stood up and clapped.",
    "The librarian stamped the cards and stacked the returned books.",
    "A strong wind blew the leaves across the empty playground.",
    "The tailor measured the sleeves and marked the cloth with chalk.",
    "The soldiers marched through the gate while the drums were beating.",
    "My cousin told a long story about his trip to the mountains.",
    "The baker opened the shop early and swept the floor.",
    "An old man fed the pigeons on a bench in the park.",
    "The painter cleaned his brushes and closed the window.",
    "The girls laughed at the clown who slipped on the stage.",
]

PLAIN = [  # (prompt, answer[, separator]); the separator between prompt and answer defaults to " "
    # facts
    ("The capital of France is", "Paris"), ("The capital of England is", "London"),
    ("The capital of Japan is", "Tokyo"), ("The opposite of hot is", "cold"),
    ("The opposite of up is", "down"), ("The first day of the week is", "Monday"),
    ("Monday, Tuesday, Wednesday,", "Thursday"), ("January, February,", "March"),
    ("One, two, three, four,", "five"), ("A, B, C, D,", "E"),
    ("The chemical symbol for water is", "H"), ("The largest ocean on Earth is the", "Pacific"),
    ("The Earth goes around the", "Sun"), ("Water boils at 100 degrees", "Celsius"),
    ("The Statue of Liberty is in New", "York"), ("The Eiffel Tower is in", "Paris"),
    ("Romeo and Juliet was written by William", "Shakespeare"), ("The fastest land animal is the", "cheetah"),
    ("Ten, nine, eight, seven,", "six"), ("Red, orange, yellow, green,", "blue"),
    ("The plural of mouse is", "mice"), ("Once upon a", "time"), ("Thank you very", "much"),
    ("Knock knock. Who's", "there"), ("The sun rises in the", "east"),
    # arithmetic (SmolLM2 writes digits as single tokens: the answer's first digit is the target)
    ("2 + 2 =", "4"), ("3 + 4 =", "7"), ("10 - 3 =", "7"), ("5 * 2 =", "10"), ("1 + 1 =", "2"),
    ("6 + 2 =", "8"), ("9 - 4 =", "5"),
    # code (no space before the answer where code has none)
    ("def add(a, b):\n    return a", "+"), ("for i in range(10):\n    print(", "i", ""),
    ("import numpy as", "np"), ("import matplotlib.pyplot as", "plt"),
    ("x = [1, 2, 3]\nprint(len(", "x", ""), ("if x > 0:\n    print(\"positive\")\nelse:\n    print(\"", "negative", ""),
    ("def greet(name):\n    print(\"Hello, \" +", "name"), ("while True:\n    line = input()\n    if not line:\n        ", "break", ""),
    # multi-sentence coreference
    ("Alice gave Bob a book. Then Bob thanked", "Alice"), ("John met Mary at the park. Later, Mary called", "John"),
    ("The trophy did not fit in the suitcase because the suitcase was too", "small"),
    ("Tom has a red car and Anna has a blue car. The red car belongs to", "Tom"),
    ("My brother is a doctor. He works at the", "hospital"), ("Sarah lost her keys, so she could not open the", "door"),
    ("Emma bought a new dress. She wore the", "dress"), ("The cat chased the mouse. The mouse ran into a", "hole"),
    ("Peter called his mother because it was her", "birthday"),
    ("Lisa and her dog went for a walk. The dog barked at a", "cat"),
    ("David wrote a letter to Kate. Kate read the letter from", "David"),
    ("Birds can fly because they have", "wings"), ("At night we sleep in a", "bed"),
    ("The teacher wrote on the", "board"), ("The Earth is the third planet from the", "Sun"),
]


KINDS = {0: "facts", 25: "arithmetic", 32: "code", 40: "coreference", 51: "facts"}  # first index of each kind


def _passages_prompt(first: str, second: str, tail: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """`first + " " + second + tail` and the character spans of the two passages, recorded while
    the text is built (never searched for)."""
    a = (0, len(first))
    prompt = first + " "
    b = (len(prompt), len(prompt) + len(second))
    prompt += second + tail
    assert prompt[slice(*a)] == first and prompt[slice(*b)] == second
    return prompt, a, b


def dsa_items() -> list[dict]:
    """The 105 distractor-first items, then the same 105 with the passages swapped."""
    items, swapped = [], []
    for i, (evidence, question, stem, answer) in enumerate(FACTS):
        j = (i * 5) % len(DISTRACTORS)  # spread the distractors; never one that holds the answer
        while answer.lower() in DISTRACTORS[j].lower():
            j = (j + 1) % len(DISTRACTORS)
        distractor = DISTRACTORS[j]
        tail = " Question: " + question + " Answer: " + stem  # identical in both orders
        assert answer.lower()[:4] in evidence.lower(), (evidence, answer)
        kind = "fictional" if i >= 60 else "common"
        base = f"dsa-{i:03d}"
        prompt, d_span, e_span = _passages_prompt(distractor, evidence, tail)
        items.append({"id": base, "kind": kind, "order": "distractor_first", "prompt": prompt,
                      "answer": answer, "segments": {"distractor": list(d_span), "evidence": list(e_span)}})
        prompt, e_span, d_span = _passages_prompt(evidence, distractor, tail)
        swapped.append({"id": f"{base}-swap", "base_id": base, "kind": kind, "order": "evidence_first",
                        "prompt": prompt, "answer": answer,
                        "segments": {"distractor": list(d_span), "evidence": list(e_span)}})
    return items + swapped


def plain_items() -> list[dict]:
    out = []
    kind = "facts"
    for i, row in enumerate(PLAIN):
        kind = KINDS.get(i, kind)
        item = {"id": f"plain-{i:02d}", "kind": kind, "prompt": row[0], "answer": row[1]}
        if len(row) > 2:
            item["sep"] = row[2]
        out.append(item)
    return out


def rendered() -> dict[str, str]:
    """File name -> the exact text this script writes."""
    return {name: "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
            for name, items in (("dsa_qa.jsonl", dsa_items()), ("plain.jsonl", plain_items()))}


def main(argv: list[str] | None = None) -> int:
    """Write the sets; with --check, write nothing and fail when a file differs from what this
    script would write."""
    import sys

    check = "--check" in (sys.argv[1:] if argv is None else argv)
    bad = 0
    for name, text in rendered().items():
        if check:
            same = (HERE / name).is_file() and (HERE / name).read_text(encoding="utf-8") == text
            bad += not same
            print(name, "up to date" if same else "DIFFERS from make_datasets.py")
        else:
            (HERE / name).write_text(text, encoding="utf-8")
            print(name, text.count("\n"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
