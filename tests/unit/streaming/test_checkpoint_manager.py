"""Which manager writes the checkpoint: the FileSystem one where the driver's Spark has it, else Spark's default;
and through which local file system: the one that forks no chmod where the driver has it."""

from types import SimpleNamespace

from streaming.job import (
    CHECKPOINT_MANAGER_KEY,
    LOCAL_CHECKPOINT_MANAGER,
    LOCAL_FS_CLASS,
    local_fs_classpath,
    use_local_checkpoint_manager,
)
from tone.jars import COMPLETE, local_filesystem


class FakeConf(dict):
    def get(self, key, default=None):
        return super().get(key, default)

    def set(self, key, value):
        self[key] = value


def fake_spark(known_classes, conf=None):
    def for_name(name):
        if name not in known_classes:
            raise RuntimeError(f"py4j.protocol.Py4JJavaError: java.lang.ClassNotFoundException: {name}")

    jvm = SimpleNamespace(java=SimpleNamespace(lang=SimpleNamespace(Class=SimpleNamespace(forName=for_name))))
    return SimpleNamespace(conf=FakeConf(conf or {}), sparkContext=SimpleNamespace(_jvm=jvm))


def test_the_filesystem_manager_is_set_where_the_driver_has_it():
    spark = fake_spark({LOCAL_CHECKPOINT_MANAGER})
    use_local_checkpoint_manager(spark, "/var/lib/tone/checkpoints/tone")
    assert spark.conf == {CHECKPOINT_MANAGER_KEY: LOCAL_CHECKPOINT_MANAGER}


def test_a_spark_without_the_class_keeps_its_default(caplog):
    spark = fake_spark(set())
    with caplog.at_level("INFO"):
        use_local_checkpoint_manager(spark, "/var/lib/tone/checkpoints/tone")
    assert spark.conf == {}
    assert "keep Spark's default manager" in caplog.text


def test_a_manager_the_session_names_is_kept():
    spark = fake_spark({LOCAL_CHECKPOINT_MANAGER}, {CHECKPOINT_MANAGER_KEY: "com.example.S3Manager"})
    use_local_checkpoint_manager(spark, "/var/lib/tone/checkpoints/tone")
    assert spark.conf == {CHECKPOINT_MANAGER_KEY: "com.example.S3Manager"}


def test_a_checkpoint_on_another_file_system_keeps_sparks_choice():
    for location in ("hdfs://namenode:8020/checkpoints/tone", "s3a://bucket/checkpoints/tone"):
        spark = fake_spark({LOCAL_CHECKPOINT_MANAGER})
        use_local_checkpoint_manager(spark, location)
        assert spark.conf == {}
    spark = fake_spark({LOCAL_CHECKPOINT_MANAGER})
    use_local_checkpoint_manager(spark, "file:/var/lib/tone/checkpoints/tone")
    assert spark.conf == {CHECKPOINT_MANAGER_KEY: LOCAL_CHECKPOINT_MANAGER}


def test_the_local_file_system_without_chmod_is_used_where_the_driver_has_it():
    spark = fake_spark({LOCAL_CHECKPOINT_MANAGER, LOCAL_FS_CLASS})
    use_local_checkpoint_manager(spark, "/var/lib/tone/checkpoints/tone")
    assert spark.conf == {
        CHECKPOINT_MANAGER_KEY: LOCAL_CHECKPOINT_MANAGER,
        "fs.file.impl": LOCAL_FS_CLASS,
        "fs.file.impl.disable.cache": "true",  # else Hadoop hands back the file system Spark made at start
    }


def test_a_local_file_system_the_session_names_is_kept():
    spark = fake_spark({LOCAL_CHECKPOINT_MANAGER, LOCAL_FS_CLASS}, {"fs.file.impl": "com.example.LocalFs"})
    use_local_checkpoint_manager(spark, "/var/lib/tone/checkpoints/tone")
    assert spark.conf == {CHECKPOINT_MANAGER_KEY: LOCAL_CHECKPOINT_MANAGER, "fs.file.impl": "com.example.LocalFs"}


def test_the_driver_classpath_names_the_fetched_jar_or_nothing(tmp_path, caplog):
    with caplog.at_level("INFO"):
        assert local_fs_classpath(tmp_path) == ""
    assert "make setup" in caplog.text
    fetched = tmp_path / local_filesystem().dirname
    fetched.mkdir()
    (fetched / "hadoop-bare-naked-local-fs-0.1.0.jar").write_bytes(b"PK")
    assert local_fs_classpath(tmp_path) == ""  # no .complete marker: a fetch that did not finish is not trusted
    (fetched / COMPLETE).write_text("done\n")
    assert local_fs_classpath(tmp_path) == str(fetched / "hadoop-bare-naked-local-fs-0.1.0.jar")
