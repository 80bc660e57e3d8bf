# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Direct identifiers (name, address, phone, e-mail) for the identity columns of IR_BEN_R.

Faker's French lists give the raw material; calling Faker once per field and person is too slow for millions
of people, so names are drawn from its lists with numpy and Faker itself only fills a per-chunk pool of street
names. E-mails embed a number unique to each person, so they are unique without a global lookup.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
from faker import Faker
from faker.providers.person.fr_FR import Provider as PersonProvider

from hygie.synth.codes import communes_by_department
from hygie.synth.geography import departments, postal_code
from hygie.synth.population import People

IntArray = npt.NDArray[np.int64]

_STREET_POOL = 600
_MOBILE_SHARE = 0.72
_EMAIL_DOMAINS = (
    ("gmail.com", 0.38), ("orange.fr", 0.14), ("hotmail.fr", 0.1), ("yahoo.fr", 0.07), ("free.fr", 0.07),
    ("laposte.net", 0.06), ("sfr.fr", 0.05), ("outlook.fr", 0.05), ("wanadoo.fr", 0.04), ("icloud.com", 0.04),
)  # fmt: skip


@dataclass(frozen=True)
class Identities:
    last_name: list[str]
    first_name: list[str]
    address: list[str]
    postal_code: list[str]
    city: list[str]
    phone: list[str]
    email: list[str]


@cache
def _names() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], npt.NDArray[np.float64]]:
    last = tuple(PersonProvider.last_names)
    # Faker's list is ordered by frequency (Martin, Bernard, ...): a Zipf-like weight keeps common names common.
    w = 1.0 / np.arange(1, len(last) + 1) ** 0.6
    return tuple(PersonProvider.first_names_male), tuple(PersonProvider.first_names_female), last, w / w.sum()


def _ascii(s: str) -> str:
    plain = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum() or c == "-")


@cache
def _commune_names() -> dict[tuple[str, str], str]:
    return {(c.dpt, c.code): c.name for cs in communes_by_department().values() for c in cs}


@dataclass(frozen=True)
class EmailNumbers:
    """Maps a person's index i to (a*i + b) mod m, the number their e-mail carries.

    With ``a`` coprime with ``m`` (a power of ten) the map is a bijection on [0, m), and m is at least the
    population: every person gets a different number, so e-mails are unique without remembering them.
    """

    a: int
    b: int
    m: int

    @classmethod
    def draw(cls, rng: np.random.Generator, people: int) -> EmailNumbers:
        m = 10 ** max(4, len(str(people)) + 1)
        a = int(rng.integers(m // 10, m))
        while a % 2 == 0 or a % 5 == 0:
            a += 1
        return cls(a=a % m, b=int(rng.integers(0, m)), m=m)

    def __call__(self, index: IntArray) -> IntArray:
        return (self.a * index + self.b) % self.m


def draw_identities(rng: np.random.Generator, faker_seed: int, people: People, numbers: EmailNumbers) -> Identities:
    """Identities for one chunk of people."""
    n = people.size
    fake = Faker("fr_FR")
    fake.seed_instance(faker_seed)
    streets = [fake.street_name() for _ in range(_STREET_POOL)]
    male, female, last, last_w = _names()
    first_m = rng.integers(0, len(male), size=n)
    first_f = rng.integers(0, len(female), size=n)
    last_i = rng.choice(len(last), size=n, p=last_w)
    street_i = rng.integers(0, _STREET_POOL, size=n)
    number = np.minimum(1 + rng.geometric(0.035, size=n), 250)
    number_style = rng.random(n)
    mobile = rng.random(n) < _MOBILE_SHARE
    digits = rng.integers(0, 100, size=(n, 4))
    sub = rng.integers(0, 10, size=n)
    domains = [d for d, _ in _EMAIL_DOMAINS]
    dw = np.array([w for _, w in _EMAIL_DOMAINS])
    domain_i = rng.choice(len(domains), size=n, p=dw / dw.sum())
    pattern = rng.integers(0, 4, size=n)
    token = numbers(people.index)

    dpts = departments()
    names = _commune_names()
    out = Identities([], [], [], [], [], [], [])
    for i in range(n):
        sex = int(people.sex[i])
        first = male[first_m[i]] if sex == 1 else female[first_f[i]]
        nom = last[last_i[i]]
        dpt = dpts[people.dpt[i]]
        commune = people.commune[i]
        out.last_name.append(nom.upper())
        out.first_name.append(first)
        street = streets[street_i[i]]
        style = number_style[i]
        if style < 0.05:
            out.address.append(street)
        elif style < 0.09:
            out.address.append(f"{number[i]} bis, {street}")
        else:
            out.address.append(f"{number[i]}, {street}")
        out.postal_code.append(postal_code(dpt.code, commune))
        out.city.append(names[(dpt.code, commune)])
        d = digits[i]
        if dpt.mobile:
            head = dpt.mobile if mobile[i] else dpt.landline
            out.phone.append(f"{head[:2]} {head[2:]} {d[0]:02d} {d[1]:02d} {d[2]:02d}")
        else:
            head = ("06" if sub[i] < 6 else "07") if mobile[i] else dpt.landline
            out.phone.append(f"{head} {sub[i]}{d[0] % 10} {d[1]:02d} {d[2]:02d} {d[3]:02d}")
        f_ascii, l_ascii = _ascii(first), _ascii(nom)
        local = (f"{f_ascii}.{l_ascii}", f"{f_ascii[0]}{l_ascii}", f"{l_ascii}.{f_ascii}", f"{f_ascii}{l_ascii}")[
            pattern[i]
        ]
        # Letters then the person's unique number: two people can never share an address.
        out.email.append(f"{local}{token[i]}@{domains[domain_i[i]]}")
    return out
