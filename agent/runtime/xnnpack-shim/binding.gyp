# Builds libedge_exit_xnnpack.so, a plain shared library (not a Node addon)
# that the tfjs-tflite-node binding loads as an external delegate plugin, and
# edge_exit_xnnpack_config.node, the addon through which the runtime hands it
# its options (see xnnpack_plugin.c).
{
  'variables': {
    'tflite_root': '<!(node -p "require(\'path\').dirname(require.resolve(\'tfjs-tflite-node/package.json\'))")',
  },
  'targets': [{
    'target_name': 'edge_exit_xnnpack',
    'type': 'shared_library',
    'product_prefix': 'lib',
    'sources': ['xnnpack_plugin.c'],
    'cflags': ['-O2', '-fvisibility=hidden'],
    'conditions': [
      ['OS=="linux" and target_arch=="x64"', {
        'libraries': [
          '<(tflite_root)/cc_deps/linux_amd64/libtensorflowlite_c.so',
          '-Wl,-rpath,<(tflite_root)/cc_deps/linux_amd64',
        ],
      }],
      ['OS=="linux" and target_arch=="arm64"', {
        'libraries': [
          '<(tflite_root)/cc_deps/linux_arm64/libtensorflowlite_c.so',
          '-Wl,-rpath,<(tflite_root)/cc_deps/linux_arm64',
        ],
      }],
    ],
  }, {
    'target_name': 'edge_exit_xnnpack_config',
    'sources': ['config_addon.c'],
    'dependencies': ['edge_exit_xnnpack'],
    # The plugin sits beside the addon in build/Release.
    'ldflags': ['-Wl,-rpath,\'$$ORIGIN\''],
  }],
}
