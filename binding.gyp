{
  "variables": {
    "vlmq_version": "<!(node -p \"require('./package.json').version\")"
  },
  "targets": [
    {
      "target_name": "vlmq",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native/core').filter(f=>f.endsWith('.cpp')).map(f=>'native/core/'+f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/cpu').filter(f=>f.endsWith('.cpp')).map(f=>'native/cpu/'+f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/conformance').filter(f=>f.endsWith('.cpp')).map(f=>'native/conformance/'+f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/napi').filter(f=>f.endsWith('.cpp')).map(f=>'native/napi/'+f).join(' ')\")",
        "native/cuda/cuda_absent.cpp"
      ],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "include_dirs": ["native/include", "native"],
      "defines": [
        "NAPI_VERSION=8",
        "VLMQ_VERSION=\"<(vlmq_version)\"",
        "VLMQ_BUILD_SYSTEM=\"node-gyp\""
      ],
      "cflags_cc": ["-std=c++17", "-O3", "-fvisibility=hidden", "-Wall", "-Wno-unused-parameter"],
      "cflags_cc!": ["-std=gnu++17"],
      "libraries": ["-llapacke", "-lopenblas"]
    }
  ]
}
