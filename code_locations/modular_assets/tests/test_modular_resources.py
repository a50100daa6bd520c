"""The location's IO manager: values on disk for later runs, from memory within a run."""

from pathlib import Path

import dagster as dg
import pandas as pd

from modular_assets.resources import RESOURCES, RunCachedFilesystemIOManager

KEY = dg.AssetKey("posts_cleaned")


def test_values_of_this_run_come_from_memory_and_earlier_runs_from_disk(tmp_path: Path) -> None:
    factory = RunCachedFilesystemIOManager(base_dir=str(tmp_path))
    frame = pd.DataFrame({"post_id": [1, 2], "title": ["東京", "café"]})

    this_run = factory.create_io_manager(dg.build_init_resource_context())
    this_run.handle_output(dg.build_output_context(asset_key=KEY), frame)

    assert (tmp_path / "posts_cleaned").is_file(), "every value is written for later runs"
    assert this_run.load_input(dg.build_input_context(asset_key=KEY)) is frame

    later_run = factory.create_io_manager(dg.build_init_resource_context())
    reloaded = later_run.load_input(dg.build_input_context(asset_key=KEY))
    assert reloaded is not frame
    pd.testing.assert_frame_equal(reloaded, frame)


def test_the_deployment_stores_values_where_dagsters_default_io_manager_does(tmp_path: Path) -> None:
    io_manager = RESOURCES["io_manager"]
    assert isinstance(io_manager, RunCachedFilesystemIOManager)
    assert io_manager.base_dir is None  # i.e. the instance's storage folder, the shared volume
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        stored = io_manager.create_io_manager(dg.build_init_resource_context(instance=instance))
        stored.handle_output(dg.build_output_context(asset_key=KEY), [1, 2, 3])
        assert Path(instance.storage_directory(), "posts_cleaned").is_file()
