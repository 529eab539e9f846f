"""Plausible personal memories and the questions an agent asks about them.

Each tenant gets a *persona*: facts on distinct topics (a job, a pet, an allergy,
a sibling...), each worded from a few templates filled with varied names,
places, foods and jobs, with the question whose one right answer among that
tenant's memories is that fact. ``diary_entry`` makes new memories for write
traffic; ``free_query`` makes questions with fresh wording, which no cache has
seen. Deterministic for a given seed, standard library only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["TOPICS", "Fact", "diary_entry", "free_query", "persona"]


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split("|") if w.strip())


_SLOTS: dict[str, tuple[str, ...]] = {
    "name": _words(
        "Anna|Ben|Chloe|Daniel|Elif|Farid|Grace|Hugo|Ines|Jonas|Kemi|Liam|Maya|Noah|Olga|Pablo|"
        "Priya|Quentin|Rosa|Sami|Tara|Umar|Vera|Wei|Ximena|Yusuf|Zoe|Aiko|Bruno|Carmen|Dmitri|"
        "Esther|Felix|Greta|Hamid|Isla|Javier|Kofi|Lena|Mateo|Nadia|Oscar|Paula|Rania|Stefan|"
        "Thea|Viktor|Wanjiru|Yara|Leila|Tom|Sarah|Emma|Max|Leo|Sofia|Arjun|Mei|Ngozi|Ruth"
    ),
    "surname": _words(
        "Patel|Okafor|Novak|Garcia|Nakamura|Schmidt|O'Brien|Rossi|Haddad|Kowalski|Silva|Larsen|"
        "Nguyen|Moreau|Fischer|Mensah|Ivanova|Costa|Yilmaz|Andersson|Murphy|Kaur|Dubois|Tanaka"
    ),
    "city": _words(
        "Lisbon|Berlin|Tokyo|Nairobi|Toronto|Melbourne|Glasgow|Lyon|Porto|Krakow|Seoul|Oaxaca|"
        "Bristol|Leeds|Galway|Utrecht|Valencia|Montreal|Cape Town|Denver|Osaka|Bologna|Tallinn|"
        "Edinburgh|Seville|Hamburg|Ljubljana|Lagos|Auckland|Vancouver|Marseille|Gdansk|Austin|"
        "Copenhagen|Bergen|Naples|Cork|Antwerp|Zurich|Kyoto|Accra|Dublin|Hanoi|Lima|Quebec City"
    ),
    "allergen": _words(
        "peanuts|shellfish|sesame|walnuts|eggs|gluten|soy|kiwi fruit|cashews|mustard|celery|"
        "strawberries|penicillin|cat hair|bee stings|latex|almonds|prawns"
    ),
    "dish": _words(
        "grilled sardines|mushroom risotto|pad thai|lamb tagine|shakshuka|pho|pierogi|bibimbap|"
        "chicken katsu curry|paella|falafel wraps|ramen with extra egg|jollof rice|moussaka|"
        "spinach lasagne|tacos al pastor|butter chicken|pierogi with sour cream|gnocchi|"
        "miso-glazed aubergine|fish pie|dal with rice|beef rendang|ceviche|khachapuri"
    ),
    "restaurant": _words(
        "Casa Lola|the Blue Door|Nonna's Kitchen|Sakura House|the Corner Bistro|Little Saigon|"
        "Mama Africa|the Olive Tree|Golden Dragon|Harbour Fish Bar|the Green Fork|Taqueria Sol|"
        "Bombay Spice|the Old Mill|Kimchi Bar|Trattoria Sole"
    ),
    "job": _words(
        "nurse|software engineer|primary school teacher|civil engineer|accountant|physiotherapist|"
        "graphic designer|pharmacist|electrician|data analyst|architect|paramedic|chef|"
        "veterinarian|journalist|lawyer|librarian|carpenter|dentist|product manager|firefighter|"
        "social worker|pilot|marine biologist|translator|bus driver|midwife|sound engineer"
    ),
    "company": _words(
        "a small design studio|the city hospital|a logistics startup|the public library|"
        "an engineering consultancy|a family bakery|a bank|the university|a solar energy firm|"
        "a video game studio|the local council|a charity for refugees|a car rental company|"
        "a wine importer|a children's hospital|an airline|a bookshop|a research lab"
    ),
    "pet_kind": _words("cat|dog|rabbit|parrot|tortoise|hamster|border collie|ginger tabby"),
    "pet_name": _words(
        "Biscuit|Rex|Luna|Pepper|Mochi|Bruno|Olive|Ziggy|Nala|Pickle|Ginger|Boris|Poppy|Simba"
    ),
    "partner": _words("wife|husband|partner|girlfriend|boyfriend|fiancée|fiancé"),
    "sibling": _words("older brother|younger sister|twin brother|older sister|younger brother"),
    "child": _words("daughter|son|youngest|eldest"),
    "diet": _words(
        "vegetarian|vegan|pescatarian|on a low-sugar diet|eating gluten-free|doing intermittent "
        "fasting|off dairy"
    ),
    "instrument": _words("guitar|piano|cello|drums|violin|saxophone|bass|ukulele|trumpet"),
    "band": _words("jazz band|community orchestra|rock band|folk group|church choir|brass band"),
    "weekday": _words("Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"),
    "month": _words(
        "January|February|March|April|May|June|July|August|September|October|November|December"
    ),
    "place": _words(
        "river|canal|seafront|park|old railway line|lake|harbour|forest trail|city walls"
    ),
    "car": _words(
        "Toyota Corolla|Volkswagen Golf|Tesla Model 3|Fiat 500|Skoda Octavia|Honda Jazz|"
        "Ford Focus|Renault Zoe|Volvo estate|Mini Cooper|Kia Niro|Subaru Outback"
    ),
    "color": _words("red|dark blue|silver|white|black|green|grey|yellow"),
    "reason": _words(
        "a friend's wedding|a conference|my cousin's fortieth|a hiking trip|a job interview|"
        "a family reunion|a football match|a week of surfing|my mum's birthday"
    ),
    "coffee": _words(
        "black with no sugar|as a flat white with oat milk|with a splash of cold milk|"
        "as a double espresso|as a decaf latte|iced, with vanilla syrup|with two sugars"
    ),
    "language": _words(
        "Spanish|Japanese|Portuguese|Korean|German|Italian|Arabic|Mandarin|Swahili|Polish|Greek"
    ),
    "book": _words(
        "Middlemarch|The Remains of the Day|Klara and the Sun|Pachinko|One Hundred Years of "
        "Solitude|The Overstory|Persepolis|Americanah|The Left Hand of Darkness|Stoner|Piranesi"
    ),
    "medication": _words(
        "levothyroxine|metformin|an antihistamine|an iron supplement|vitamin D|a statin|"
        "an asthma inhaler|blood pressure tablets"
    ),
    "condition": _words(
        "thyroid|type 2 diabetes|hay fever|anaemia|high cholesterol|asthma|high blood pressure"
    ),
    "home": _words(
        "a two-bedroom flat|a terraced house|a narrowboat|a studio apartment|a farmhouse|"
        "a shared house|a loft conversion|a bungalow"
    ),
    "genre": _words(
        "jazz|Afrobeats|classical piano|eighties synth-pop|bluegrass|K-pop|hip hop|flamenco|"
        "ambient electronica|Britpop|bossa nova"
    ),
    "team": _words(
        "Celtic|Benfica|Ajax|the Toronto Raptors|Borussia Dortmund|Leeds United|the All Blacks|"
        "Napoli|the Chicago Cubs|Galatasaray|FC Porto"
    ),
    "subject": _words(
        "history|mechanical engineering|nursing|economics|marine biology|French literature|"
        "computer science|architecture|music|chemistry|law|philosophy"
    ),
    "fear": _words("heights|spiders|deep water|flying|thunderstorms|needles|wasps|the dark"),
    "transport": _words("bike|train|bus|tram|car|e-scooter|ferry|foot"),
    "org": _words(
        "food bank|animal shelter|hospice shop|community garden|youth football club|"
        "library's reading programme|homeless shelter|repair café"
    ),
    "plant": _words(
        "tomatoes|courgettes|runner beans|basil|strawberries|chillies|potatoes|lavender|kale"
    ),
    "goal": _words(
        "a deposit on a flat|a trip to Japan|a new bike|my wedding|a sabbatical|an electric car|"
        "my daughter's university fees|a kitchen renovation"
    ),
    "appointment": _words(
        "dentist appointment|haircut|eye test|physio session|car service|vet visit for the cat|"
        "parents' evening|flu jab|mortgage meeting|piano lesson"
    ),
    "school": _words(
        "St Mary's Primary|Riverside Academy|the Montessori nursery|Hillcrest Secondary|"
        "the international school|Oakwood Primary"
    ),
}

#: topic -> (fact templates, question templates); a question never names the answer.
_TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "allergy": (
        ("I am allergic to {allergen}.", "{allergen} gives me hives, so I avoid it completely."),
        ("What should I avoid eating?", "Do I have any allergies?"),
    ),
    "pet": (
        (
            "My {pet_kind} {pet_name} is {n} years old.",
            "We adopted a {pet_kind} called {pet_name}.",
        ),
        ("What pet do I have?", "What's my pet called?"),
    ),
    "job": (
        ("I work as a {job} at {company} in {city}.", "I've been a {job} for {n} years."),
        ("What do I do for a living?", "What's my job?"),
    ),
    "hometown": (
        ("I grew up in {city} and moved away at eighteen.", "I was born and raised in {city}."),
        ("Where did I grow up?", "Where am I originally from?"),
    ),
    "partner": (
        ("My {partner} {name} and I have been together for {n} years.",),
        ("Who is my partner?", "Am I in a relationship?"),
    ),
    "sibling": (
        ("My {sibling} {name} is a {job} in {city}.",),
        ("Do I have any siblings?", "What does my brother or sister do?"),
    ),
    "food": (
        ("My favourite dish is {dish}, especially the one at {restaurant}.",),
        ("What do I like to eat?", "What's my favourite meal?"),
    ),
    "diet": (("I've been {diet} since {year}.",), ("Do I follow any diet?", "How do I eat?")),
    "music": (
        ("I play the {instrument} in a {band} on {weekday} evenings.",),
        ("Do I play an instrument?", "What do I do in the evenings?"),
    ),
    "exercise": (
        ("I run {n} kilometres along the {place} every {weekday} morning.",),
        ("How do I keep fit?", "Do I do any sport?"),
    ),
    "birthday": (("My birthday is on {month} {day}.",), ("When is my birthday?",)),
    "children": (
        ("My {child} {name} is {n} and goes to {school}.",),
        ("Do I have children?", "Which school do my kids go to?"),
    ),
    "car": (("I drive a {color} {car}.",), ("What car do I have?", "What do I drive?")),
    "trip": (
        ("I'm flying to {city} on {month} {day} for {reason}.",),
        ("Do I have any trips coming up?", "When am I travelling next?"),
    ),
    "coffee": (("I take my coffee {coffee}.",), ("How do I like my coffee?",)),
    "language": (
        ("I'm learning {language} and have a lesson every {weekday}.",),
        ("What language am I studying?",),
    ),
    "reading": (("I'm halfway through {book} and loving it.",), ("What book am I reading?",)),
    "doctor": (
        ("My GP is Dr {surname} at the {city} Road surgery.",),
        ("Who is my doctor?", "Which surgery am I registered with?"),
    ),
    "medication": (
        ("I take {medication} every morning for my {condition}.",),
        ("What medication am I on?", "Do I take any pills?"),
    ),
    "home": (
        ("I live in {home} in {city}.",),
        ("Where do I live?", "What kind of home do I have?"),
    ),
    "taste": (("I mostly listen to {genre} these days.",), ("What music do I like?",)),
    "sport_team": (("I support {team} and never miss a game.",), ("Which team do I support?",)),
    "wedding": (
        ("{name} and I got married on {day} {month} {year} in {city}.",),
        ("When is my wedding anniversary?",),
    ),
    "education": (
        ("I studied {subject} at university in {city}.",),
        ("What did I study?", "Where did I go to university?"),
    ),
    "fear": (("I'm terrified of {fear}.",), ("What am I afraid of?", "Do I have any phobias?")),
    "commute": (
        ("I get to work by {transport}, about {n} minutes each way.",),
        ("How do I get to work?", "How long is my commute?"),
    ),
    "volunteering": (
        ("I volunteer at the {org} every {weekday}.",),
        ("Do I do any volunteering?", "Where do I help out?"),
    ),
    "garden": (
        ("I grow {plant} and {plant2} in my back garden.",),
        ("What do I grow in the garden?",),
    ),
    "saving": (
        ("I'm saving for {goal}, putting aside {amount} a month.",),
        ("What am I saving money for?",),
    ),
    "best_friend": (
        ("{name} has been my closest friend since primary school.",),
        ("Who is my best friend?",),
    ),
}
TOPICS: tuple[str, ...] = tuple(_TOPICS)

_DIARY = (
    "Had {dish} with {name} at {restaurant} on {weekday}.",
    "Booked a {appointment} for next {weekday} at {hour} o'clock.",
    "Finished reading {book}, a present from {name}; the ending surprised me.",
    "{name} recommended the {dish} at {restaurant} in {city}.",
    "Need to buy a present before {name}'s birthday on {month} {day}.",
    "Ran {n} kilometres along the {place} on {weekday}, a new personal best.",
    "Moved the {language} lesson from {weekday} to {weekday2} this week.",
    "The {color} {car} needs its service before the trip to {city}.",
    "Promised {name} I'd help at the {org} on {weekday}.",
    "Planted {plant} today; {name} gave me the seedlings.",
    "Told {name} I'm thinking about retraining as a {job}.",
    "Skipped coffee on {weekday} and felt terrible until lunch with {name}.",
)
_FREE = (
    "Any ideas for dinner with {name} on {weekday}?",
    "What should I pack for {city} in {month}?",
    "What did {name} recommend at {restaurant}?",
    "What should I tell the new {job} in {city} about my health?",
    "What gift would {name} like for their birthday on {month} {day}?",
    "Which evenings could I practise {language} with {name}?",
    "Where did {name} and I have {dish}?",
    "Did I say anything about walks by the {place} in {city}?",
)


@dataclass(frozen=True, slots=True)
class Fact:
    """One memory and the question whose one right answer, for its tenant, it is."""

    topic: str
    text: str
    question: str


def _fill(template: str, rng: random.Random) -> str:
    values = {slot: rng.choice(options) for slot, options in _SLOTS.items()}
    values |= {
        "n": str(rng.randint(2, 15)),
        "day": str(rng.randint(1, 28)),
        "year": str(rng.randint(1995, 2024)),
        "hour": str(rng.randint(8, 17)),
        "amount": f"£{rng.randrange(50, 800, 25)}",
        "plant2": rng.choice(_SLOTS["plant"]),
        "weekday2": rng.choice(_SLOTS["weekday"]),
    }
    text = template.format(**values)
    return text[0].upper() + text[1:]


def persona(seed: str, count: int) -> list[Fact]:
    """``count`` facts on distinct topics (at most ``len(TOPICS)``), the same for a seed."""
    rng = random.Random(seed)
    topics = rng.sample(TOPICS, min(count, len(TOPICS)))
    facts = []
    for topic in topics:
        texts, questions = _TOPICS[topic]
        facts.append(Fact(topic, _fill(rng.choice(texts), rng), _fill(rng.choice(questions), rng)))
    return facts


def diary_entry(rng: random.Random) -> str:
    """A new everyday memory, for write traffic."""
    return _fill(rng.choice(_DIARY), rng)


def free_query(rng: random.Random) -> str:
    """A question in fresh words: almost never the same text twice."""
    return _fill(rng.choice(_FREE), rng)
