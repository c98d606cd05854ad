"""Physical units of ssehpc.

Everything on the outside of the engine is in *metal-like* units with femtoseconds:

=========  ==============================
quantity   unit
=========  ==============================
length     Å
energy     eV
mass       amu (g/mol)
time       fs
temperature K
pressure   GPa (internally eV/Å³)
force      eV/Å
momentum   amu·Å/fs
=========  ==============================

Internal quantities that are not in the table (pressure) are converted with the constants below.
Kinetic energy of a momentum ``p`` (amu·Å/fs) and mass ``m`` (amu) is ``MVV2E · p²/(2m)`` in eV.
"""

from __future__ import annotations

#: Boltzmann constant, eV/K (CODATA 2018).
KB: float = 8.617333262e-5

#: 1 amu·Å²/fs² expressed in eV: 1.66053906660e-27 kg · 1e-20 m² / 1e-30 s² / 1.602176634e-19 J.
MVV2E: float = 1.66053906660e-27 * 1e10 / 1.602176634e-19

#: 1 eV/Å³ in GPa.
EV_PER_A3_TO_GPA: float = 1.602176634e-19 / 1e-30 / 1e9

#: 1 GPa in eV/Å³.
GPA_TO_EV_PER_A3: float = 1.0 / EV_PER_A3_TO_GPA

#: 1 bar in GPa (LAMMPS metal pressure unit).
BAR_TO_GPA: float = 1e-4

#: femtoseconds per picosecond / nanosecond.
FS_PER_PS: float = 1e3
FS_PER_NS: float = 1e6

#: Coulomb constant e²/(4π ε0) in eV·Å.
COULOMB: float = 14.399645478425668

UNITS: dict[str, str] = {
    "length": "angstrom",
    "energy": "eV",
    "mass": "amu",
    "time": "fs",
    "temperature": "K",
    "pressure": "GPa",
    "force": "eV/angstrom",
    "momentum": "amu*angstrom/fs",
}
