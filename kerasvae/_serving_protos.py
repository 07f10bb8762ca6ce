"""TF Serving's `ModelServerConfig` protos, without the tensorflow-serving-api package.

The serialized `FileDescriptorProto`s of tensorflow_serving/config/model_server_config.proto and
the files it imports (file_system_storage_path_source.proto, logging_config.proto,
log_collector_config.proto; google/protobuf/any.proto comes with protobuf), copied verbatim
from tensorflow-serving-api 2.21.0 (`model_server_config_pb2.DESCRIPTOR` and its
dependencies, `CopyToProto`). kerasvae parses and writes `models.config` with them: the same
messages, fields and text format as TF Serving, while the package itself stays an extra (it
requires tensorflow>=2.21 and grpcio, which kerasvae's core does not).
`tests/reliability/test_models_config.py` checks them against the installed package.
"""

import functools

FILES = (
    # tensorflow_serving/config/file_system_storage_path_source.proto
    (b'\n?tensorflow_serving/config/file_system_storage_path_source.proto\x12\x12ten'
     b'sorflow.serving"\xde\x06\n!FileSystemStoragePathSourceConfig\x12Z\n\tservables\x18\x05 \x03'
     b'(\x0b2G.tensorflow.serving.FileSystemStoragePathSourceConfig.ServableToMo'
     b'nitor\x12%\n\x1dfile_system_poll_wait_seconds\x18\x03 \x01(\x03\x12,\n fail_if_zero_versions_'
     b'at_startup\x18\x04 \x01(\x08B\x02\x18\x01\x12(\n servable_versions_always_present\x18\x06 \x01(\x08\x1a\x9d\x03\n\x15Ser'
     b'vableVersionPolicy\x12d\n\x06latest\x18d \x01(\x0b2R.tensorflow.serving.FileSystemStor'
     b'agePathSourceConfig.ServableVersionPolicy.LatestH\x00\x12^\n\x03all\x18e \x01(\x0b2O.tens'
     b'orflow.serving.FileSystemStoragePathSourceConfig.ServableVersionPolicy'
     b'.AllH\x00\x12h\n\x08specific\x18f \x01(\x0b2T.tensorflow.serving.FileSystemStoragePathSou'
     b'rceConfig.ServableVersionPolicy.SpecificH\x00\x1a\x1e\n\x06Latest\x12\x14\n\x0cnum_versions\x18\x01'
     b' \x01(\r\x1a\x05\n\x03All\x1a\x1c\n\x08Specific\x12\x10\n\x08versions\x18\x01 \x03(\x03B\x0f\n\rpolicy_choice\x1a\xb1\x01\n\x11Servabl'
     b'eToMonitor\x12\x15\n\rservable_name\x18\x01 \x01(\t\x12\x11\n\tbase_path\x18\x02 \x01(\t\x12l\n\x17servable_versi'
     b'on_policy\x18\x04 \x01(\x0b2K.tensorflow.serving.FileSystemStoragePathSourceConfig'
     b'.ServableVersionPolicyJ\x04\x08\x03\x10\x04J\x04\x08\x01\x10\x02J\x04\x08\x02\x10\x03b\x06proto3'),
    # tensorflow_serving/config/log_collector_config.proto
    (b'\n4tensorflow_serving/config/log_collector_config.proto\x12\x12tensorflow.ser'
     b'ving";\n\x12LogCollectorConfig\x12\x0c\n\x04type\x18\x01 \x01(\t\x12\x17\n\x0ffilename_prefix\x18\x02 \x01(\tB\x03\xf8\x01\x01'
     b'b\x06proto3'),
    # tensorflow_serving/config/logging_config.proto
    (b'\n.tensorflow_serving/config/logging_config.proto\x12\x12tensorflow.serving\x1a\x19'
     b'google/protobuf/any.proto\x1a4tensorflow_serving/config/log_collector_con'
     b'fig.proto"b\n\x15PerTaskSamplingConfig\x12\n\n\x02dc\x18\x01 \x01(\t\x12\x17\n\ntask_index\x18\x02 \x01(\x05H\x00\x88\x01'
     b'\x01\x12\x15\n\rsampling_rate\x18\x03 \x01(\x01B\r\n\x0b_task_index"\xe0\x01\n\x0eSamplingConfig\x12\x15\n\rsampling'
     b'_rate\x18\x01 \x01(\x01\x12L\n\x19per_task_sampling_configs\x18\x03 \x03(\x0b2).tensorflow.serving.Pe'
     b'rTaskSamplingConfig\x12\x12\n\nattributes\x18\x02 \x01(\x05"U\n\nAttributes\x12\x10\n\x0cATTR_DEFAULT\x10'
     b'\x00\x12\x17\n\x13ATTR_REQUEST_ORIGIN\x10\x01\x12\x1c\n\x18ATTR_REQUEST_CRITICALITY\x10\x02"\xc7\x01\n\rLoggingCo'
     b'nfig\x12D\n\x14log_collector_config\x18\x01 \x01(\x0b2&.tensorflow.serving.LogCollectorCo'
     b'nfig\x12;\n\x0fsampling_config\x18\x02 \x01(\x0b2".tensorflow.serving.SamplingConfig\x123\n\x15c'
     b'ustom_logging_config\x18\x03 \x01(\x0b2\x14.google.protobuf.AnyB\x03\xf8\x01\x01b\x06proto3'),
    # tensorflow_serving/config/model_server_config.proto
    (b'\n3tensorflow_serving/config/model_server_config.proto\x12\x12tensorflow.serv'
     b'ing\x1a\x19google/protobuf/any.proto\x1a?tensorflow_serving/config/file_system_'
     b'storage_path_source.proto\x1a.tensorflow_serving/config/logging_config.pr'
     b'oto"\xb1\x03\n\x0bModelConfig\x12\x0c\n\x04name\x18\x01 \x01(\t\x12\x11\n\tbase_path\x18\x02 \x01(\t\x125\n\nmodel_type\x18\x03 \x01'
     b'(\x0e2\x1d.tensorflow.serving.ModelTypeB\x02\x18\x01\x12\x16\n\x0emodel_platform\x18\x04 \x01(\t\x12i\n\x14model'
     b'_version_policy\x18\x07 \x01(\x0b2K.tensorflow.serving.FileSystemStoragePathSource'
     b'Config.ServableVersionPolicy\x12J\n\x0eversion_labels\x18\x08 \x03(\x0b22.tensorflow.serv'
     b'ing.ModelConfig.VersionLabelsEntry\x129\n\x0elogging_config\x18\x06 \x01(\x0b2!.tensorflo'
     b'w.serving.LoggingConfig\x1a4\n\x12VersionLabelsEntry\x12\x0b\n\x03key\x18\x01 \x01(\t\x12\r\n\x05value\x18\x02 '
     b'\x01(\x03:\x028\x01J\x04\x08\x05\x10\x06J\x04\x08\t\x10\n"B\n\x0fModelConfigList\x12/\n\x06config\x18\x01 \x03(\x0b2\x1f.tensorflow.se'
     b'rving.ModelConfig"\x94\x01\n\x11ModelServerConfig\x12@\n\x11model_config_list\x18\x01 \x01(\x0b2#.t'
     b'ensorflow.serving.ModelConfigListH\x00\x123\n\x13custom_model_config\x18\x02 \x01(\x0b2\x14.goo'
     b'gle.protobuf.AnyH\x00B\x08\n\x06config*N\n\tModelType\x12\x1e\n\x16MODEL_TYPE_UNSPECIFIED\x10\x00\x1a'
     b'\x02\x08\x01\x12\x12\n\nTENSORFLOW\x10\x01\x1a\x02\x08\x01\x12\r\n\x05OTHER\x10\x02\x1a\x02\x08\x01B\x03\xf8\x01\x01b\x06proto3'),
)


@functools.lru_cache(maxsize=None)
def model_server_config_class():
  """The `tensorflow.serving.ModelServerConfig` message class, from a private descriptor pool
  (so it never clashes with tensorflow_serving's own registration when both are imported)."""
  from google.protobuf import any_pb2  # pylint: disable=import-outside-toplevel
  from google.protobuf import descriptor_pb2  # pylint: disable=import-outside-toplevel
  from google.protobuf import descriptor_pool  # pylint: disable=import-outside-toplevel
  from google.protobuf import message_factory  # pylint: disable=import-outside-toplevel
  pool = descriptor_pool.DescriptorPool()
  any_file = descriptor_pb2.FileDescriptorProto()
  any_pb2.DESCRIPTOR.CopyToProto(any_file)
  pool.Add(any_file)
  for data in FILES:
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(data))
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName("tensorflow.serving.ModelServerConfig"))
