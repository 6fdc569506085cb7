"""The bundled real tables (source type ``bundled``): read offline from the installed wheels, and
the types inferred for their named columns."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from aiinfra.data.features import FeatureType, Task, drop_missing_target, infer_contract, infer_task
from aiinfra.data.schema import BundledDataset, FeaturesConfig
from aiinfra.data.sources import BUNDLED_FILES, BundledSource

N, C, B, D, T = (
    FeatureType.numeric,
    FeatureType.categorical,
    FeatureType.boolean,
    FeatureType.datetime,
    FeatureType.text,
)

CASES = {
    # dataset: (target, rows, expected types of named columns, dropped columns, task)
    BundledDataset.penguins: (
        "species",
        344,
        {"island": C, "sex": C, "bill_length_mm": N, "body_mass_g": N, "year": N},
        set(),
        Task.multiclass,
    ),
    BundledDataset.penguins_raw: (
        "Species",
        344,
        {"Clutch_Completion": B, "Date_Egg": D, "Island": C, "Sex": C, "Culmen_Length_mm": N, "Sample_Number": N},
        {"Individual_ID"},
        Task.multiclass,
    ),
    BundledDataset.cars: (
        "Miles_per_Gallon",
        406,
        {"Name": T, "Origin": C, "Year": D, "Horsepower": N, "Cylinders": N, "Weight_in_lbs": N},
        set(),
        Task.regression,
    ),
    BundledDataset.seattle_weather: (
        "weather",
        1461,
        {"date": D, "precipitation": N, "wind": N},
        set(),
        Task.multiclass,
    ),
}


def test_every_bundled_dataset_is_a_file_inside_an_installed_package():
    """No download: each file ships in the wheel (vega_datasets' URL datasets are not used)."""
    from importlib import resources

    assert set(BUNDLED_FILES) == set(BundledDataset) == set(CASES)
    for package, name, _ in BUNDLED_FILES.values():
        assert resources.files(package).joinpath(name).is_file(), (package, name)


@pytest.mark.parametrize("dataset", list(CASES), ids=str)
def test_inferred_types_of_bundled_datasets(dataset):
    target, rows, expected, dropped, task = CASES[dataset]
    frame = BundledSource(SimpleNamespace(dataset=dataset)).read()
    assert len(frame) == rows and target in frame.columns
    assert all(c.replace("_", "").isalnum() for c in frame.columns), list(frame.columns)  # plain names
    frame = drop_missing_target(frame, target)
    cfg = FeaturesConfig()
    train = frame.sample(frac=0.7, random_state=0).index
    contract = infer_contract(frame, SimpleNamespace(target=target, columns=None), cfg, train)
    types = {c.name: c.type for c in contract.columns}
    assert {k: types.get(k) for k in expected} == expected
    assert set(contract.dropped) == dropped
    assert contract.task == task == infer_task(frame[target], cfg).task


def test_cars_target_gaps_are_dropped_and_penguins_features_keep_theirs():
    cars = BundledSource(SimpleNamespace(dataset=BundledDataset.cars)).read()
    assert int(cars["Miles_per_Gallon"].isna().sum()) == 8
    assert len(drop_missing_target(cars, "Miles_per_Gallon")) == 398
    penguins = BundledSource(SimpleNamespace(dataset=BundledDataset.penguins)).read()
    source = SimpleNamespace(target="species", columns=None)
    contract = infer_contract(penguins, source, FeaturesConfig(), penguins.index)
    assert contract.column("sex").nullable and contract.column("sex").null_share == pytest.approx(11 / 344, abs=1e-6)
    assert contract.column("island").categories == {"Biscoe": 168, "Dream": 124, "Torgersen": 52}


def test_reading_a_bundled_table_imports_no_scikit_learn():
    """Only the scikit-learn sources import scikit-learn (~2.5 s of every prepare of a CSV before)."""
    code = (
        "import sys; from types import SimpleNamespace; from aiinfra.data.schema import BundledDataset; "
        "from aiinfra.data.sources import BundledSource; "
        "BundledSource(SimpleNamespace(dataset=BundledDataset.cars)).read(); "
        "print('sklearn' in sys.modules, 'scipy' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]
