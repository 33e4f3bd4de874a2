module github.com/fairpool/fairpool

go 1.26
