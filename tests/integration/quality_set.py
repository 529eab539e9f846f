"""A labelled set for judging the offline embedder on personal memories.

``QA_PAIRS``: an agent's question and the one memory that answers it. The
memories are one person's, consistent with each other, and each question has
exactly one right answer among them. Each memory is a self-contained statement,
as an agent stores it: it names what it is about ("My blood type is O negative",
not "I'm O negative", which means nothing without the conversation it came
from). Questions are phrased as an agent asks them and avoid the answer's words
where a person naturally would ("what food should I avoid?" for a peanut allergy).

``IMPLICIT_QA_PAIRS``: the same questions over memories worded the way people
speak, often without naming their subject ("Flat white with oat milk, no sugar").
A harder set, held to a lower floor: it guards against regressions rather than
proving the bar.

``PARAPHRASE_PAIRS``: two wordings of the same fact. ``UNRELATED``: statements
on topics none of the pairs touch, half of them first-person memories too.
"""

from __future__ import annotations

__all__ = ["IMPLICIT_QA_PAIRS", "PARAPHRASE_PAIRS", "QA_PAIRS", "UNRELATED"]

QA_PAIRS: tuple[tuple[str, str], ...] = (
    # health and allergies
    ("What food should I avoid?", "I am allergic to peanuts."),
    (
        "Is there any medicine I react badly to?",
        "Penicillin gives me a severe rash, so doctors have to prescribe something else.",
    ),
    ("Do I have any long-term medical condition?", "I've had type 1 diabetes since I was twelve."),
    ("What vaccinations have I had recently?", "I had my flu vaccination in October."),
    ("How well can I see without glasses?", "I'm very short-sighted and wear contact lenses."),
    ("Am I okay with dairy?", "Milk and cheese upset my stomach because I'm lactose intolerant."),
    ("How do I sleep?", "I suffer from insomnia and rarely get more than five hours a night."),
    ("Who is my doctor?", "My GP is Dr Patel at the Riverside surgery."),
    ("Have I had any operations?", "I had my appendix removed in 2020."),
    ("What is my blood type?", "My blood type is O negative."),
    ("Do I smoke?", "I quit cigarettes five years ago."),
    ("Do I drink alcohol?", "I stopped drinking alcohol three years ago."),
    # family and friends
    ("Who is my partner?", "My partner Sarah and I have been together for twelve years."),
    ("When is my wedding anniversary?", "Sarah and I got married on the 21st of June 2015."),
    ("How many children do I have?", "We have three kids: Leo, Max and Emma."),
    (
        "When is my daughter's birthday?",
        "My daughter Emma was born on March 3rd and turns nine this year.",
    ),
    ("Where do my parents live?", "My mum and dad retired to a village near Galway."),
    ("Do I have any siblings?", "My older brother Tom is a firefighter in Leeds."),
    (
        "Who looks after the kids when I'm at work?",
        "My mother-in-law looks after our children on weekdays.",
    ),
    ("What's the name of my best friend?", "Priya has been my closest friend since we were seven."),
    # pets
    ("What's my cat's name?", "My cat Biscuit is a ginger tabby."),
    ("What breed is my dog?", "My dog Rex is a golden retriever."),
    (
        "Who looks after my pets when I'm away?",
        "Our neighbour Jan feeds our cat and dog whenever we're away.",
    ),
    # work and money
    ("What do I do for a living?", "I work as an intensive care nurse."),
    ("When do I usually work?", "My shifts are mostly nights, from 8pm to 8am."),
    ("How do I get to work?", "I commute to the hospital by bike, about twenty minutes each way."),
    ("What did I study at university?", "I have a degree in biology from Edinburgh."),
    (
        "Do I have any career plans?",
        "My long-term plan is to leave nursing and open my own bakery.",
    ),
    ("How much do I earn?", "My salary is about 42,000 pounds a year."),
    # hobbies and tastes
    ("What do I like to do at weekends?", "I go rock climbing most Saturdays."),
    ("What instrument do I play?", "I've been learning the cello for three years."),
    (
        "What kind of books do I enjoy?",
        "I love reading crime novels, especially Agatha Christie.",
    ),
    ("Which sports team do I support?", "I'm a lifelong Liverpool fan."),
    (
        "What am I training for?",
        "I'm running the Berlin marathon in September and train five days a week.",
    ),
    ("What kind of music do I listen to?", "I mostly put on old jazz, Coltrane and Miles Davis."),
    (
        "What sort of films do I enjoy?",
        "Animated films are my favourite; I never miss a new Pixar movie.",
    ),
    ("What is my favourite colour?", "Dark green is the colour I like most."),
    ("Do I like hot weather?", "I can't cope with hot weather above 30 degrees."),
    ("Which charity do I support?", "I volunteer at a food bank once a month."),
    # travel and languages
    (
        "Where was my most recent vacation?",
        "Last summer we spent two weeks island hopping in Croatia.",
    ),
    ("Where do I want to travel next?", "Japan is the next country I want to visit."),
    ("Am I nervous about flying?", "I'm scared of flying, so I take the train whenever I can."),
    ("Which languages can I speak?", "I'm fluent in Spanish and get by in Portuguese."),
    ("Do I have a passport from another country?", "I hold both Irish and Canadian passports."),
    # car and home
    ("What do I drive?", "I drive a blue 2018 Toyota Corolla."),
    (
        "When is my vehicle due for its check?",
        "The MOT on the Toyota expires at the end of October.",
    ),
    ("Where do I park?", "I park my car in a rented garage two streets away."),
    ("Where do I live?", "I live in a third-floor flat in Clapham, south London."),
    ("Do I own or rent my home?", "We rent our flat from a landlord who lives abroad."),
    ("What are my plans for Christmas?", "We're hosting the whole family for Christmas this year."),
    # food and drink
    ("Do I eat meat?", "I've been vegetarian since 2019."),
    (
        "What sort of restaurant should you book for me?",
        "Thai food is my favourite cuisine, especially green curry.",
    ),
    ("How do I take my coffee?", "I drink my coffee as a flat white with oat milk and no sugar."),
    ("What do I usually eat for breakfast?", "Most mornings I have porridge with blueberries."),
    # schedule and everyday
    (
        "When do I need to get my teeth checked?",
        "I'm seeing the dentist on Tuesday the 14th at 3pm.",
    ),
    (
        "Which afternoons am I on the school run?",
        "I pick the boys up from primary school on Wednesdays and Fridays at 3:15.",
    ),
    ("Am I part of any group or club?", "Every Monday night I sing in a community choir."),
    (
        "How do I like to be contacted?",
        "I prefer to be contacted by text message; I never answer phone calls.",
    ),
    ("What phone do I use?", "I've got an old iPhone 11 with a cracked screen."),
    ("What's my shoe size?", "I wear size 9 shoes."),
)

IMPLICIT_QA_PAIRS: tuple[tuple[str, str], ...] = (
    # health and allergies
    ("What food should I avoid?", "I am allergic to peanuts."),
    (
        "Is there any medicine I react badly to?",
        "Penicillin gives me a severe rash, so doctors have to prescribe something else.",
    ),
    ("Do I have any long-term medical condition?", "I've had type 1 diabetes since I was twelve."),
    ("What vaccinations have I had recently?", "I got my flu jab in October."),
    ("How well can I see without glasses?", "I'm very short-sighted and wear contact lenses."),
    ("Am I okay with dairy?", "Milk and cheese upset my stomach because I'm lactose intolerant."),
    ("How do I sleep?", "I suffer from insomnia and rarely get more than five hours a night."),
    ("Who is my doctor?", "My GP is Dr Patel at the Riverside surgery."),
    ("Have I had any operations?", "I had my appendix removed in 2020."),
    ("What is my blood type?", "I'm O negative."),
    ("Do I smoke?", "I quit cigarettes five years ago."),
    ("Do I drink alcohol?", "I gave up beer and wine completely three years ago."),
    # family and friends
    ("Who is my partner?", "Sarah and I have been together for twelve years."),
    ("When is my wedding anniversary?", "We tied the knot on the 21st of June 2015."),
    ("How many children do I have?", "We have three kids: Leo, Max and Emma."),
    ("When is my daughter's birthday?", "My little girl turns nine on March 3rd."),
    ("Where do my parents live?", "My mum and dad retired to a village near Galway."),
    ("Do I have any siblings?", "My older brother Tom is a firefighter in Leeds."),
    ("Who looks after the kids when I'm at work?", "My mother-in-law babysits on weekdays."),
    ("What's the name of my best friend?", "Priya has been my closest mate since we were seven."),
    # pets
    ("What's my cat's name?", "Biscuit is my ginger tabby."),
    ("What breed is my dog?", "Rex is a golden retriever."),
    (
        "Who looks after my pets when I'm away?",
        "Our neighbour Jan feeds the animals whenever we're on holiday.",
    ),
    # work and money
    ("What do I do for a living?", "I'm an intensive care nurse."),
    ("When do I usually work?", "My shifts are mostly nights, from 8pm to 8am."),
    ("How do I get to work?", "I cycle to the hospital; it takes about twenty minutes."),
    ("What did I study at university?", "I have a degree in biology from Edinburgh."),
    ("Do I have any career plans?", "I'm saving up to open my own bakery one day."),
    ("How much do I earn?", "My salary is about 42,000 pounds a year."),
    # hobbies and tastes
    ("What do I like to do at weekends?", "I go rock climbing most Saturdays."),
    ("What instrument do I play?", "I've been learning the cello for three years."),
    (
        "What kind of books do I enjoy?",
        "I love reading crime novels, especially Agatha Christie.",
    ),
    ("Which sports team do I support?", "I'm a lifelong Liverpool fan."),
    ("What am I training for?", "I'm preparing for the Berlin marathon in September."),
    ("What kind of music do I listen to?", "I mostly put on old jazz, Coltrane and Miles Davis."),
    ("What sort of films do I enjoy?", "I never miss a new Pixar movie."),
    ("What is my favourite colour?", "I'd paint every wall dark green if I could."),
    ("Do I like hot weather?", "I can't cope with heat above 30 degrees."),
    ("Which charity do I support?", "I volunteer at a food bank once a month."),
    # travel and languages
    (
        "Where was my most recent vacation?",
        "Last summer we spent two weeks island hopping in Croatia.",
    ),
    ("Where do I want to travel next?", "Japan is at the top of my bucket list."),
    ("Am I nervous about flying?", "Planes terrify me, so I take the train whenever I can."),
    ("Which languages can I speak?", "I'm fluent in Spanish and get by in Portuguese."),
    ("Do I have a passport from another country?", "I hold dual Irish and Canadian citizenship."),
    # car and home
    ("What do I drive?", "My car is a blue 2018 Toyota Corolla."),
    (
        "When is my vehicle due for its check?",
        "The MOT on the Toyota expires at the end of October.",
    ),
    ("Where do I park?", "I leave the car in a garage space two streets away."),
    ("Where do I live?", "My flat is on the third floor in Clapham, south London."),
    ("Do I own or rent my home?", "Our landlord lives abroad and we pay him monthly."),
    ("What are my plans for Christmas?", "We're hosting the whole family for the holidays."),
    # food and drink
    ("Do I eat meat?", "I've been vegetarian since 2019."),
    (
        "What sort of restaurant should you book for me?",
        "Thai curries are what I love eating most.",
    ),
    ("How do I take my coffee?", "Flat white with oat milk, no sugar."),
    ("What do I usually eat for breakfast?", "Most mornings I have porridge with blueberries."),
    # schedule and everyday
    (
        "When do I need to get my teeth checked?",
        "I'm seeing the dentist on Tuesday the 14th at 3pm.",
    ),
    (
        "Which afternoons am I on the school run?",
        "I collect the boys from their primary on Wednesdays and Fridays at 3:15.",
    ),
    ("Am I part of any group or club?", "Every Monday night I sing in a community choir."),
    (
        "How do I like to be contacted?",
        "Send me a message rather than ringing, I never pick up calls.",
    ),
    ("What phone do I use?", "I've got an old iPhone 11 with a cracked screen."),
    ("What's my shoe size?", "I take a 9 in trainers."),
)

PARAPHRASE_PAIRS: tuple[tuple[str, str], ...] = (
    ("I am allergic to peanuts.", "Eating peanuts makes me break out in hives."),
    (
        "My wife and I met at university.",
        "I first got to know my spouse when we were both students.",
    ),
    (
        "I work from home on Mondays and Fridays.",
        "At the start and end of the week I do my job remotely.",
    ),
    ("I can't stand the smell of fish.", "The odour of seafood makes me feel sick."),
    (
        "My daughter starts secondary school in September.",
        "In the autumn my girl moves up to high school.",
    ),
    ("We are moving house next month.", "In a few weeks we relocate to a new home."),
    ("I prefer tea to coffee.", "Given the choice, I'd rather drink tea than coffee."),
    (
        "My flight to Rome leaves at 6am on Saturday.",
        "I fly out to Italy's capital early Saturday.",
    ),
    (
        "I broke my left wrist skiing last winter.",
        "Last winter I fractured my left arm in a skiing accident.",
    ),
    (
        "I'm trying to lose five kilos before the summer.",
        "My goal is to shed about eleven pounds by summer.",
    ),
    ("My car won't start in the cold.", "On freezing mornings the engine refuses to turn over."),
    (
        "I hate being called by my full name.",
        "Please don't use my complete first name, I dislike it.",
    ),
    ("My son is scared of the dark.", "My boy gets frightened when the lights are off."),
    ("I've been a vegan for three years.", "I stopped eating all animal products three years ago."),
    ("My sister is getting married in May.", "My sibling's wedding is this May."),
    ("I usually go to bed around 11pm.", "Most nights I'm asleep by eleven."),
    ("I don't like driving on motorways.", "Highways make me uncomfortable behind the wheel."),
    (
        "I need to renew my passport before July.",
        "My travel document expires and must be replaced before July.",
    ),
    ("My grandmother turns ninety next week.", "Next week is my nan's 90th birthday."),
    ("I get seasick on boats.", "Ferries always make me nauseous."),
    (
        "I play five-a-side football on Wednesday evenings.",
        "Every Wednesday night I have a small-sided soccer match.",
    ),
    ("My favourite author is Terry Pratchett.", "Of all writers, I like Pratchett best."),
    ("I'm saving for a deposit on a flat.", "I'm putting money aside to buy an apartment."),
    ("The boiler in our house is broken.", "Our heating system has stopped working at home."),
)

UNRELATED: tuple[str, ...] = (
    "I keep the spare keys under the blue flowerpot.",
    "My password manager is Bitwarden.",
    "I collect vintage postcards from the 1950s.",
    "I'm learning to knit a scarf.",
    "I have a tattoo of a compass on my shoulder.",
    "I water the tomato plants every evening.",
    "My laptop is a five-year-old ThinkPad.",
    "I once met a famous chess player at an airport.",
    "I'm left-handed.",
    "I have a mild fear of clowns.",
    "I did a parachute jump for charity in 2017.",
    "I sing in the shower every morning.",
    "I've never seen Star Wars.",
    "My wardrobe is mostly black clothes.",
    "I grow chillies on the windowsill.",
    "The museum is closed on Mondays.",
    "Copper conducts electricity very well.",
    "The Pacific is the largest ocean on Earth.",
    "Bees communicate by dancing.",
    "The recipe needs two cups of flour.",
    "Chess was invented more than a thousand years ago.",
    "The stock market fell sharply on Tuesday.",
    "Volcanoes can form new islands.",
    "The printer on the second floor is out of toner.",
    "Mount Everest is in the Himalayas.",
)
