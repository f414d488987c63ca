// The peer gateway of `make bench`: fast-gateway proxying every path to one backend.
// usage: node fast-gateway.js <port> <backend base URL>
'use strict'
const gateway = require('fast-gateway')

const port = Number(process.argv[2])
const target = process.argv[3]
gateway({ routes: [{ prefix: '/v1', prefixRewrite: '/v1', target }] })
  .start(port, '127.0.0.1')
  .then(() => console.log(`fast-gateway on 127.0.0.1:${port} -> ${target}`))
