module github.com/fairpool/fairpool/bench

go 1.26

require (
	github.com/fairpool/fairpool v0.0.0
	github.com/jackc/puddle/v2 v2.2.3
)

require golang.org/x/sync v0.1.0 // indirect

replace github.com/fairpool/fairpool => ../
