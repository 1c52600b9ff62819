module github.com/relayhq/relay/sdk

go 1.26
