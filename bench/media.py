"""The media of the quality benchmark: a dev split to tune on and a test split to report, made
from *different* photos, recordings and voices, with what a person would say is there written by
hand (never a model's output).

| | dev (tune here) | test (README figures) |
|---|---|---|
| photos | scikit-image and scikit-learn's samples (BSD), Tux Paint stamps: farm birds, instruments, kitchen | other Tux Paint stamps: wild and pet animals, vehicles, food, objects |
| voices | espeak-ng (en-us, en-gb, en-us+f3), 140-175 words/min | flite (slt, rms, awb) at 130-170 words/min, a person: Asterisk's prompts (Allison Smith) |
| sounds | heroes, frozen-bubble, Tux Paint farm animals, freedesktop's alarm clock, OpenSFX steam horn and level crossing | other OpenSFX recordings (ship, ferry, truck and train horns, farm and wild animals, crashes, applause, chainsaw), Tux Football's crowd, whistle and music, Tux Paint's dog, owl, siren |
| room tone | OpenSFX steam hiss | OpenSFX wind |

Licences: Tux Paint stamps GPL-2 (tuxpaint-stamps-default); OpenSFX CC-BY-3.0 / CC0 per
recording, as its catalogue states (openttd-opensfx); Asterisk core sounds CC-BY-SA-3.0
(asterisk-core-sounds-en-wav); Tux Football GPL-2 (tuxfootball); foobillardplus GPL-2;
freedesktop sound theme GPL-2+ / CC-BY-SA (sound-theme-freedesktop); heroes-sound-effects GPL;
frozen-bubble-data GPL-2; scikit-image and scikit-learn samples: public domain / BSD.

Every query below was written before any figure of the test split was seen; a query lists the
photos, phrases or sound labels that answer it. Paraphrases say what was said in other words.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.demo.synth import PHOTOS, Photo, Recording, Scene, Speech

CACHE = (Path(__file__).resolve().parent / ".cache").resolve()
APT_PACKAGES = (
    "tuxpaint-stamps-default", "openttd-opensfx", "asterisk-core-sounds-en-wav", "tuxfootball", "foobillardplus-data",
    "sound-theme-freedesktop", "flite", "heroes-sound-effects", "frozen-bubble-data", "espeak-ng",
)  # fmt: skip
_STAMPS = "/usr/share/tuxpaint/stamps/"
_PROMPTS = "/usr/share/asterisk/sounds/en/"
_OPENSFX = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")


def opensfx(index: int) -> str:
    """Recording ``index`` of OpenSFX's catalogue (a table of offset/size pairs, each entry a
    name then a RIFF WAV), extracted once to the cache."""
    out = CACHE / f"opensfx-{index:02d}.wav"
    if not out.exists():
        if not _OPENSFX.exists():
            raise FileNotFoundError(f"{_OPENSFX} is missing: apt-get install openttd-opensfx")
        data = _OPENSFX.read_bytes()
        offset, size = struct.unpack_from("<II", data, 8 * index)
        entry = data[offset & 0x7FFFFFFF : (offset & 0x7FFFFFFF) + size]
        CACHE.mkdir(exist_ok=True)
        staged = out.with_suffix(".part")
        staged.write_bytes(entry[1 + entry[0] :])
        staged.replace(out)
    return str(out)


def stamp(relative: str, *words: str) -> Photo:
    return Photo("tuxpaint-stamps-default", f"{_STAMPS}{relative}.png", words)


def sound(path: str, at: float, label: str, kind: str, *, seconds: float | None = None, gain_db: float = 0.0) -> Recording:
    return Recording(path, at, label, kind, duration_seconds=seconds, gain_db=gain_db)


def prompt(name: str, text: str, at: float) -> Speech:
    """An Asterisk prompt, spoken by a person, and its transcript from the package's list."""
    return Speech(text, at, voice=f"file:{_PROMPTS}{name}.wav")


@dataclass(frozen=True)
class Video:
    name: str
    scenes: tuple[Scene, ...]
    sounds: tuple
    options: dict = field(default_factory=dict)  # build_video's keyword arguments


@dataclass(frozen=True)
class Split:
    name: str
    videos: tuple[Video, ...]
    shown: tuple[tuple[str, tuple[str, ...]], ...]  # query, photo names that answer it
    said: tuple[tuple[str, tuple[str, ...]], ...]  # query, phrases (as scripted) that answer it
    heard: tuple[tuple[str, tuple[str, ...]], ...]  # query, sound labels that answer it


# --- dev ---------------------------------------------------------------------------------------

_D = {
    "rooster": stamp("animals/birds/rooster", "rooster", "cock", "chicken"),
    "duck": stamp("animals/birds/duck", "duck", "drake", "mallard"),
    "goat": stamp("animals/mammals/bovines/goat", "goat"),
    "pig": stamp("animals/mammals/pig", "pig", "hog"),
    "zebra": stamp("animals/mammals/equines/zebra", "zebra"),
    "camel": stamp("animals/mammals/camel/dromedary", "camel", "dromedary"),
    "violin": stamp("hobbies/music/string/violin", "violin", "fiddle"),
    "trumpet": stamp("hobbies/music/brass/trumpet", "trumpet"),
    "teapot": stamp("household/dishes/teapot", "teapot", "tea"),
    "camera": stamp("hobbies/camera_35mm", "camera"),
    "balloon": stamp("vehicles/flight/balloon360", "balloon", "hot air balloon"),
    "bus": stamp("vehicles/masstransit/green_korean_bus", "bus"),
    "flamingo": stamp("animals/birds/pink_flamingo", "flamingo"),
    "pelican": stamp("animals/birds/pelican", "pelican"),
    "ostrich": stamp("animals/birds/ostrich", "ostrich"),
    "gorilla": stamp("animals/mammals/apes/gorilla", "gorilla", "ape"),
    "dolphin": stamp("animals/mammals/aquatic/dolphin", "dolphin"),
    "orca": stamp("animals/mammals/aquatic/orca", "orca", "killer whale"),
    "hippo": stamp("animals/mammals/hippopotamus", "hippopotamus", "hippo"),
    "rhino": stamp("animals/mammals/rhino_black", "rhinoceros", "rhino"),
    "deer": stamp("animals/mammals/deer/deer", "deer"),
    "kettle": stamp("household/kettle", "kettle"),
    "lightbulb": stamp("household/Lightbulb", "light bulb", "bulb"),
    "key": stamp("household/key", "key"),
}
_HEROES, _FB, _FD = "/usr/share/games/heroes/sfx/", "/usr/share/games/frozen-bubble/snd/", "/usr/share/sounds/freedesktop/stereo/"
_ANIMALS = _STAMPS + "animals/"

DEV = Split(
    "dev",
    videos=(
        Video(
            "dev-farm",
            tuple(Scene(p, d) for p, d in [
                (_D["rooster"], 9), (PHOTOS["cat"], 8), (_D["duck"], 10), (_D["goat"], 9), (PHOTOS["coffee"], 8),
                (_D["pig"], 9), (_D["violin"], 10), (_D["teapot"], 9), (_D["camera"], 8),
            ]),  # fmt: skip
            (
                Recording(opensfx(13), 0.0, gain_db=-30, background=True),
                Speech("good morning from the farm", 1.0),
                sound(_ANIMALS + "birds/rooster.ogg", 3.5, "rooster crowing", "animal"),
                Speech("the cat sleeps all day long", 10.0, voice="espeak:en-gb"),
                Speech("here come the ducks", 18.0, rate=170),
                sound(_ANIMALS + "birds/duck.ogg", 19.0, "duck quacking", "animal", gain_db=-8),
                sound(_ANIMALS + "mammals/bovines/goat.ogg", 30.0, "goat bleating", "animal", seconds=3.0),
                Speech("time for a hot cup of coffee", 36.5, voice="espeak:en-us+f3"),
                sound(_FD + "alarm-clock-elapsed.oga", 40.0, "alarm clock ringing", "alarm"),
                sound(_ANIMALS + "mammals/pig.ogg", 47.0, "pig grunting", "animal", seconds=2.5, gain_db=-6),
                Speech("she plays the violin every evening", 55.0, voice="espeak:en-gb", rate=140),
                sound(_FB + "introzik.ogg", 62.0, "music starts", "music", seconds=10.0, gain_db=-4),
                Speech("the kettle is on for tea", 65.0),
                sound(_HEROES + "explo01.wav", 75.0, "explosion", "impact"),
                Speech("smile for the camera", 77.0, voice="espeak:en-us+f3", rate=160),
            ),
            dict(width=640, height=360, fps=30),
        ),
        Video(
            "dev-city",
            tuple(Scene(p, d) for p, d in [
                (PHOTOS["motorcycle"], 9), (_D["bus"], 10), (PHOTOS["rocket"], 9), (_D["zebra"], 8), (_D["balloon"], 9),
                (PHOTOS["palace"], 10), (_D["camel"], 9), (_D["trumpet"], 9),
            ]),  # fmt: skip
            (
                Recording(opensfx(13), 0.0, gain_db=-32, background=True),
                Speech("welcome to the city tour", 1.0, voice="espeak:en-gb"),
                sound(_HEROES + "claxon.wav", 3.0, "car horn", "horn", seconds=2.0),
                Speech("the bus leaves at nine", 11.0, rate=165),
                sound(opensfx(4), 14.0, "steam train whistle", "horn", gain_db=-6),
                Speech("the rocket is ready for launch", 20.0),
                sound(_HEROES + "foule2.wav", 23.0, "crowd cheering and clapping", "crowd"),  # it claps from 3 s (issue 8)
                Speech("zebras live on the open plains", 29.5, voice="espeak:en-us+f3"),
                sound(opensfx(14), 38.0, "level crossing bell", "alarm", gain_db=-4),
                Speech("a balloon floats over the river", 41.0, voice="espeak:en-gb", rate=145),
                sound(_FB + "applause.ogg", 52.0, "applause", "crowd", seconds=4.0),
                Speech("the old palace opens at noon", 47.0, rate=155),
                Speech("camels can walk for days without water", 58.0),
                sound(_ANIMALS + "mammals/bovines/cow.ogg", 64.0, "cow mooing", "animal"),
                Speech("and now a song on the trumpet", 66.5, voice="espeak:en-us+f3"),
                sound(_FB + "frozen-mainzik-1p.ogg", 69.0, "music starts", "music", seconds=3.5),
            ),
            dict(width=640, height=360, fps=30),
        ),
        Video(
            "dev-zoo",
            tuple(Scene(_D[p], d) for p, d in [
                ("flamingo", 8), ("pelican", 7), ("ostrich", 8), ("gorilla", 9), ("dolphin", 8), ("orca", 7), ("hippo", 8),
                ("rhino", 8), ("deer", 7), ("kettle", 7), ("lightbulb", 6), ("key", 6),
            ]),  # fmt: skip
            (
                Recording(_HEROES + "foule1.wav", 0.0, gain_db=-34, background=True),
                Speech("welcome to the zoo", 1.0, voice="espeak:en-us+m3"),
                Speech("the flamingo stands on one leg", 9.0, voice="espeak:en-gb", rate=160),
                sound(_ANIMALS + "birds/duck.ogg", 16.0, "duck quacking", "animal", gain_db=-4),
                Speech("gorillas are gentle giants", 24.0, rate=145),
                sound(_FB + "applause.ogg", 29.0, "applause", "crowd", seconds=3.0, gain_db=-6),
                Speech("dolphins and killer whales live in the sea", 33.0, voice="espeak:en-us+f3"),
                sound(_HEROES + "claxon.wav", 45.0, "car horn", "horn", seconds=1.5),
                Speech("a hippo can hold its breath for minutes", 47.0, voice="espeak:en-gb"),
                sound(_FD + "alarm-clock-elapsed.oga", 56.0, "alarm clock ringing", "alarm", gain_db=-8),
                Speech("the rhino has a horn on its nose", 57.0, rate=165),
                Speech("put the kettle on, it is time for a break", 71.0, voice="espeak:en-us+m3", rate=150),
                sound(_FB + "frozen-mainzik-1p.ogg", 80.0, "music starts", "music", seconds=8.0, gain_db=-6),
            ),
            dict(width=854, height=480, fps=25),
        ),
    ),
    shown=(
        ("a flamingo", ("pink_flamingo",)), ("a pelican", ("pelican",)), ("an ostrich", ("ostrich",)), ("a gorilla", ("gorilla",)),
        ("a dolphin", ("dolphin",)), ("a killer whale", ("orca",)), ("a hippo", ("hippopotamus",)), ("a rhino", ("rhino_black",)),
        ("a deer", ("deer",)), ("a kettle", ("kettle",)), ("a light bulb", ("Lightbulb",)), ("a key", ("key",)),
        ("a sea animal", ("dolphin", "orca")), ("a large bird", ("pelican", "ostrich", "pink_flamingo")), ("an ape", ("gorilla",)),
        ("a rooster", ("rooster",)), ("a chicken", ("rooster",)), ("a cat", ("cat",)), ("a duck", ("duck",)),
        ("a goat", ("goat",)), ("a cup of coffee", ("coffee",)), ("a pig", ("pig",)), ("a violin", ("violin",)),
        ("a teapot", ("teapot",)), ("a camera", ("camera_35mm",)), ("a motorbike", ("motorcycle",)),
        ("a bus", ("green_korean_bus",)), ("a rocket", ("rocket",)), ("a zebra", ("zebra",)),
        ("a hot air balloon", ("balloon360",)), ("a temple", ("palace",)), ("a camel", ("dromedary",)),
        ("a trumpet", ("trumpet",)), ("a farm bird", ("rooster", "duck")), ("a musical instrument", ("violin", "trumpet")),
    ),
    said=(
        ("good morning from the farm", ("good morning from the farm",)), ("the cat sleeps", ("the cat sleeps all day long",)),
        ("here come the ducks", ("here come the ducks",)), ("a hot cup of coffee", ("time for a hot cup of coffee",)),
        ("plays the violin", ("she plays the violin every evening",)), ("the kettle is on", ("the kettle is on for tea",)),
        ("smile for the camera", ("smile for the camera",)), ("welcome to the city tour", ("welcome to the city tour",)),
        ("the bus leaves at nine", ("the bus leaves at nine",)), ("ready for launch", ("the rocket is ready for launch",)),
        ("zebras on the plains", ("zebras live on the open plains",)), ("a balloon over the river", ("a balloon floats over the river",)),
        ("the palace opens at noon", ("the old palace opens at noon",)), ("camels without water", ("camels can walk for days without water",)),
        ("a song on the trumpet", ("and now a song on the trumpet",)),
        ("the flamingo on one leg", ("the flamingo stands on one leg",)), ("gentle giants", ("gorillas are gentle giants",)),
        ("a hippo holds its breath", ("a hippo can hold its breath for minutes",)),
        ("the rhino's horn", ("the rhino has a horn on its nose",)),
        ("animals of the ocean", ("dolphins and killer whales live in the sea",)),
        ("let's have a cup of tea", ("put the kettle on, it is time for a break",)),
        ("someone says the cat naps", ("the cat sleeps all day long",)),  # paraphrases from here
        ("the bus departs at 9 o'clock", ("the bus leaves at nine",)), ("the launch is about to happen", ("the rocket is ready for launch",)),
        ("water is boiling for tea", ("the kettle is on for tea",)), ("the tour of the town begins", ("welcome to the city tour",)),
    ),
    heard=(
        ("a rooster crowing", ("rooster crowing",)), ("a duck quacking", ("duck quacking",)), ("a goat", ("goat bleating",)),
        ("an alarm clock", ("alarm clock ringing",)), ("a pig grunting", ("pig grunting",)), ("music", ("music starts",)),
        ("an explosion", ("explosion",)), ("a car horn", ("car horn",)), ("a train whistle", ("steam train whistle",)),
        ("a crowd cheering", ("crowd cheering and clapping",)), ("a bell ringing", ("level crossing bell", "alarm clock ringing")),
        ("applause", ("applause", "crowd cheering and clapping")), ("a cow mooing", ("cow mooing",)),
        ("people clapping", ("applause", "crowd cheering and clapping")),
        ("a farm animal", ("rooster crowing", "duck quacking", "goat bleating", "pig grunting", "cow mooing")),
        ("a bang", ("explosion",)), ("honking", ("car horn",)), ("a song playing", ("music starts",)),
        ("a duck", ("duck quacking",)), ("a clock alarm going off", ("alarm clock ringing",)),
        ("an alarm", ("alarm clock ringing", "level crossing bell")), ("cheering fans", ("crowd cheering and clapping",)),
    ),
)

# --- test: nothing here was used to choose a weight, threshold or phrasing ----------------------

_T = {
    "dog": stamp("animals/mammals/dogs/dog", "dog", "husky"),
    "lion": stamp("animals/mammals/cats/lion-2", "lion"),
    "tiger": stamp("animals/mammals/cats/tiger", "tiger"),
    "elephant": stamp("animals/mammals/elephant", "elephant"),
    "koala": stamp("animals/marsupials/koala", "koala"),
    "kangaroo": stamp("animals/marsupials/kangaroo", "kangaroo"),
    "giraffe": stamp("animals/mammals/giraffe", "giraffe"),
    "penguin": stamp("animals/birds/penguin", "penguin"),
    "firetruck": stamp("vehicles/emergency/firetruck", "fire truck", "fire engine"),
    "sheep": stamp("animals/mammals/bovines/sheep", "sheep", "ram"),
    "cow": stamp("animals/mammals/bovines/cow", "cow", "ox"),
    "horse": stamp("animals/mammals/equines/horse", "horse"),
    "bear": stamp("animals/mammals/bears/bear", "bear"),
    "frog": stamp("animals/amphibians/frog", "frog"),
    "drumkit": stamp("hobbies/music/percussion/drumkit", "drums", "drum kit"),
    "guitar": stamp("hobbies/music/string/guitar_classical", "guitar"),
    "binoculars": stamp("hobbies/binoculars", "binoculars"),
    "beetle": stamp("vehicles/auto/beetle", "car", "beetle"),
    "garbagetruck": stamp("vehicles/garbagetruck", "garbage truck", "truck"),
    "capybara": stamp("animals/mammals/rodents/capybara", "capybara"),
    "toilet": stamp("household/toilet", "toilet"),
    "broccoli": stamp("food/vegetables/broccoli", "broccoli"),
    "lemon": stamp("food/fruit/lemon", "lemon"),
    "tree": stamp("seasonal/christmas/Christmas_Tree_photo", "christmas tree", "tree"),
    "rubberduck": stamp("household/rubberduck", "rubber duck", "duck"),
    "cone": stamp("town/roadsigns/traffic_cone", "traffic cone", "cone"),
    "mailbox": stamp("town/usps_mailbox", "mailbox", "post box"),
}
_TF = "/usr/share/games/tuxfootball/sound/"
_BED = Recording(opensfx(52), 0.0, gain_db=-26, background=True)

TEST = Split(
    "test",
    videos=(
        Video(
            "test-safari",  # 720p30 MP4
            tuple(Scene(_T[p], d) for p, d in [
                ("dog", 9), ("lion", 8), ("elephant", 10), ("koala", 8), ("kangaroo", 9), ("giraffe", 8), ("penguin", 9),
                ("tiger", 8), ("firetruck", 11),
            ]),  # fmt: skip
            (
                _BED,
                Speech("this is our dog, he guards the house", 1.0, voice="flite:slt"),
                sound(_ANIMALS + "mammals/dogs/dog.ogg", 3.0, "dog barking", "animal", seconds=3.0),
                sound(opensfx(67), 12.0, "lion roaring", "animal"),
                prompt("tt-weasels", "Weasels have eaten our phone system", 18.5),
                Speech("elephants never forget a face", 21.0, voice="flite:rms", rate=135),
                sound(opensfx(29), 27.0, "applause", "crowd", gain_db=-6),
                Speech("the koala sleeps in the eucalyptus tree", 28.0, voice="flite:awb"),
                Speech("a kangaroo can jump very far", 36.0, voice="flite:slt", rate=165),
                sound(opensfx(68), 40.0, "monkeys screaming", "animal", gain_db=-4),
                prompt("followme/pls-hold-while-try", "please hold while I try to locate the person you are calling", 44.0),
                sound(opensfx(66), 53.0, "bird calling", "animal", gain_db=-10),
                Speech("penguins cannot fly but they swim fast", 52.5, voice="flite:rms"),
                sound(_TF + "titlemusic.ogg", 62.0, "music starts", "music", seconds=8.0, gain_db=-3),
                sound(_STAMPS + "vehicles/emergency/firetruck.ogg", 71.0, "siren", "alarm", seconds=8.0),
                Speech("the fire truck races to the fire", 72.0, voice="flite:awb", rate=150),
            ),
            dict(width=1280, height=720, fps=30),
        ),
        Video(
            "test-harbour",  # 1080p25 MP4, audio from 1.5 s
            tuple(Scene(_T[p], d) for p, d in [
                ("beetle", 9), ("garbagetruck", 8), ("sheep", 9), ("cow", 9), ("horse", 8), ("capybara", 10),
                ("mailbox", 8), ("cone", 9),
            ]),  # fmt: skip
            (
                Recording(opensfx(52), 1.5, gain_db=-28, background=True),
                sound(opensfx(6), 2.0, "ship horn", "horn"),
                Speech("an old car drives past the harbour", 6.0, voice="flite:rms", rate=160),
                sound(opensfx(26), 10.0, "truck horn", "horn", gain_db=-4),
                prompt("vm-nobodyavail", "Nobody is available to take your call at the moment", 14.5),
                sound(opensfx(36), 19.0, "sheep bleating", "animal", gain_db=-6),
                Speech("the farmer counts his sheep at night", 21.0, voice="flite:slt", rate=140),
                sound(opensfx(37), 27.5, "cow mooing", "animal"),
                sound(opensfx(38), 36.0, "horse neighing", "animal", gain_db=-3),
                Speech("this animal is called a capybara", 45.0, voice="flite:awb"),
                sound(opensfx(7), 49.0, "ferry horn", "horn", gain_db=-8),
                prompt("please-try-call-later", "Please try your call again later.", 55.0),
                sound(opensfx(20), 58.5, "cash register", "impact", gain_db=-6),
                Speech("letters go in the blue mailbox", 60.0, voice="flite:slt", rate=170),
                sound(opensfx(17), 66.0, "car crash", "impact"),
                sound(_FD + "phone-incoming-call.oga", 62.0, "phone ringing", "alarm", seconds=3.0, gain_db=-6),
            ),
            dict(width=1920, height=1080, fps=25, audio_offset_seconds=1.5),
        ),
        Video(
            "test-stadium",  # MPEG-TS starting at 600 s on its clock
            tuple(Scene(_T[p], d) for p, d in [
                ("drumkit", 9), ("guitar", 8), ("bear", 9), ("frog", 8), ("binoculars", 9), ("toilet", 8), ("broccoli", 9),
                ("lemon", 8), ("tree", 9), ("rubberduck", 8),
            ]),  # fmt: skip
            (
                Recording(_TF + "ingame.ogg", 0.0, gain_db=-30, background=True),
                prompt("tt-monkeysintro", "They have been carried away by monkeys", 1.0),
                sound(_TF + "crowdcheer.wav", 4.0, "crowd cheering", "crowd"),
                Speech("the band starts with a drum solo", 10.0, voice="flite:slt"),
                sound(_TF + "refwhistlelong.wav", 18.0, "whistle", "alarm", gain_db=-4),
                Speech("a brown bear catches a fish in the river", 19.5, voice="flite:rms", rate=145),
                sound(opensfx(56), 28.0, "chainsaw", "impact", gain_db=-6),
                Speech("the frog sits on a green leaf", 35.0, voice="flite:awb", rate=160),
                sound(_TF + "crowdboo.wav", 40.0, "crowd booing", "crowd", gain_db=-3),
                prompt("queue-youarenext", "Your call is now first in line and will be answered by the next available representative.", 43.0),
                sound(opensfx(18), 52.0, "explosion", "impact"),
                Speech("eat your broccoli before dessert", 54.5, voice="flite:slt", rate=150),
                sound("/usr/share/games/foobillardplus/data/applause.wav", 63.0, "applause", "crowd", gain_db=-5),
                Speech("squeeze a lemon over the fish", 62.0, voice="flite:rms"),
                sound(opensfx(10), 71.0, "train horn", "horn", gain_db=-2),
                Speech("we decorate the tree in december", 74.0, voice="flite:awb"),
                sound(_ANIMALS + "birds/owl.ogg", 79.0, "owl hooting", "animal", seconds=3.0, gain_db=-6),
            ),
            dict(width=640, height=360, fps=30, start_seconds=600.0),
        ),
    ),
    shown=(
        ("a dog", ("dog",)), ("a lion", ("lion-2",)), ("an elephant", ("elephant",)), ("a koala", ("koala",)),
        ("a kangaroo", ("kangaroo",)), ("a giraffe", ("giraffe",)), ("a penguin", ("penguin",)), ("a tiger", ("tiger",)),
        ("a fire engine", ("firetruck",)), ("a big cat", ("lion-2", "tiger")), ("an old car", ("beetle",)),
        ("a garbage truck", ("garbagetruck",)), ("a sheep", ("sheep",)), ("a cow", ("cow",)), ("a horse", ("horse",)),
        ("a capybara", ("capybara",)), ("a mailbox", ("usps_mailbox",)), ("a traffic cone", ("traffic_cone",)),
        ("a drum kit", ("drumkit",)), ("a guitar", ("guitar_classical",)), ("a bear", ("bear",)), ("a frog", ("frog",)),
        ("binoculars", ("binoculars",)), ("a toilet", ("toilet",)), ("broccoli", ("broccoli",)), ("a lemon", ("lemon",)),
        ("a christmas tree", ("Christmas_Tree_photo",)), ("a rubber duck", ("rubberduck",)),
    ),
    said=(
        ("he guards the house", ("this is our dog, he guards the house",)),
        ("weasels have eaten our phone system", ("Weasels have eaten our phone system",)),
        ("elephants never forget", ("elephants never forget a face",)),
        ("the koala sleeps in a tree", ("the koala sleeps in the eucalyptus tree",)),
        ("a kangaroo can jump", ("a kangaroo can jump very far",)),
        ("please hold while I locate the person", ("please hold while I try to locate the person you are calling",)),
        ("penguins cannot fly", ("penguins cannot fly but they swim fast",)),
        ("the fire truck races", ("the fire truck races to the fire",)),
        ("nobody is available to take your call", ("Nobody is available to take your call at the moment",)),
        ("the farmer counts his sheep", ("the farmer counts his sheep at night",)),
        ("this animal is called a capybara", ("this animal is called a capybara",)),
        ("try your call again later", ("Please try your call again later.",)),
        ("carried away by monkeys", ("They have been carried away by monkeys",)),
        ("a drum solo", ("the band starts with a drum solo",)),
        ("a bear catches a fish", ("a brown bear catches a fish in the river",)),
        ("eat your broccoli", ("eat your broccoli before dessert",)),
        ("someone says our pet dog protects the home", ("this is our dog, he guards the house",)),  # paraphrases from here
        ("penguins are good swimmers", ("penguins cannot fly but they swim fast",)),
        ("no one can answer the phone right now", ("Nobody is available to take your call at the moment",)),
        ("you are the next caller to be served", ("Your call is now first in line and will be answered by the next available representative.",)),
        ("the animals destroyed the telephones", ("Weasels have eaten our phone system",)),
        ("decorating the christmas tree", ("we decorate the tree in december",)),
        ("lemon juice on the fish", ("squeeze a lemon over the fish",)),
        ("a frog on a leaf", ("the frog sits on a green leaf",)),
    ),
    heard=(
        ("a dog barking", ("dog barking",)), ("a lion roaring", ("lion roaring",)), ("applause", ("applause",)),
        ("monkeys", ("monkeys screaming",)), ("a bird singing", ("bird calling", "owl hooting")), ("music", ("music starts",)),
        ("a siren", ("siren",)), ("a ship horn", ("ship horn", "ferry horn")), ("a truck horn", ("truck horn",)),
        ("a sheep", ("sheep bleating",)), ("a cow mooing", ("cow mooing",)), ("a horse neighing", ("horse neighing",)),
        ("a cash register", ("cash register",)), ("a car crash", ("car crash",)), ("a phone ringing", ("phone ringing",)),
        ("a crowd cheering", ("crowd cheering",)), ("a referee's whistle", ("whistle",)), ("a chainsaw", ("chainsaw",)),
        ("a crowd booing", ("crowd booing",)), ("an explosion", ("explosion",)), ("a train horn", ("train horn",)),
        ("an owl", ("owl hooting",)), ("an emergency vehicle", ("siren",)), ("a boat", ("ship horn", "ferry horn")),
        ("people clapping", ("applause",)),
    ),
)

SPLITS = {"dev": DEV, "test": TEST}
