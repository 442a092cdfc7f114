package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"testing/fstest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bucket records what the publisher does to a bucket, in order. The AWS endpoint the other tests
// use has no S3, so this stands in for the bucket; what it checks is the publisher's part: which
// objects, in which order, with which headers, and what is deleted.
type bucket struct {
	objects map[string]*s3.PutObjectInput
	bodies  map[string]string
	order   []string
	deleted []string
	pageLen int
}

func (b *bucket) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	key := aws.ToString(in.Key)
	b.objects[key], b.bodies[key] = in, string(body)
	b.order = append(b.order, key)
	return &s3.PutObjectOutput{}, nil
}

func (b *bucket) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	var keys []string
	for k := range b.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	start := 0
	if in.ContinuationToken != nil {
		for start < len(keys) && keys[start] <= *in.ContinuationToken {
			start++
		}
	}
	end := min(start+b.pageLen, len(keys))
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(end < len(keys))}
	for _, k := range keys[start:end] {
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k)})
	}
	if end < len(keys) {
		out.NextContinuationToken = aws.String(keys[end-1])
	}
	return out, nil
}

func (b *bucket) DeleteObjects(_ context.Context, in *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	for _, o := range in.Delete.Objects {
		b.deleted = append(b.deleted, aws.ToString(o.Key))
	}
	return &s3.DeleteObjectsOutput{}, nil
}

func TestPublishingTheDashboardPutsIndexLastWithItsCacheLifetimes(t *testing.T) {
	build := fstest.MapFS{
		"index.html":             {Data: []byte(`<script src="/assets/index-AAA.js"></script>`)},
		"assets/index-AAA.js":    {Data: []byte("console.log(1)")},
		"assets/index-AAA.css":   {Data: []byte("body{}")},
		"assets/Overview-BBB.js": {Data: []byte("export{}")},
		"favicon.svg":            {Data: []byte("<svg/>")},
	}
	b := &bucket{objects: map[string]*s3.PutObjectInput{}, bodies: map[string]string{}, pageLen: 2}
	// What an older build left behind.
	for _, old := range []string{"assets/index-OLD.js", "assets/Overview-OLD.js", "stale.txt"} {
		b.objects[old] = &s3.PutObjectInput{Key: aws.String(old)}
	}

	res, err := publishDashboard(context.Background(), b, "dash", build, false)
	require.NoError(t, err)
	assert.Equal(t, 5, res.files)
	assert.Equal(t, "index.html", b.order[len(b.order)-1], "index.html goes last, once every asset it names is there")
	assert.Empty(t, b.deleted, "without --delete nothing is deleted, so open tabs keep loading the old build's pages")

	js := b.objects["assets/index-AAA.js"]
	assert.Equal(t, "dash", aws.ToString(js.Bucket))
	assert.Equal(t, "text/javascript; charset=utf-8", aws.ToString(js.ContentType))
	assert.Equal(t, "public, max-age=31536000, immutable", aws.ToString(js.CacheControl))
	assert.Equal(t, "console.log(1)", b.bodies["assets/index-AAA.js"])
	assert.Equal(t, "text/css; charset=utf-8", aws.ToString(b.objects["assets/index-AAA.css"].ContentType))
	index := b.objects["index.html"]
	assert.Equal(t, "text/html; charset=utf-8", aws.ToString(index.ContentType))
	assert.Equal(t, "no-cache", aws.ToString(index.CacheControl), "a new build is seen at once")
	assert.Nil(t, b.objects["favicon.svg"].CacheControl)

	res, err = publishDashboard(context.Background(), b, "dash", build, true)
	require.NoError(t, err)
	assert.Equal(t, 3, res.deleted)
	assert.ElementsMatch(t, []string{"assets/index-OLD.js", "assets/Overview-OLD.js", "stale.txt"}, b.deleted,
		"--delete removes what the build no longer has, across list pages, and nothing else")
}

func TestPublishingTheDashboardFindsTheBucketsInTheCdkOutputs(t *testing.T) {
	dir := t.TempDir()
	outputs := filepath.Join(dir, "cdk-outputs.json")
	require.NoError(t, os.WriteFile(outputs, []byte(`{
		"rm-prod": {"ApiUrl": "https://x", "DashboardBucketName": "rm-prod-dash"},
		"rm-prod-acme": {"DashboardBucketName": "rm-prod-acme-dash"}}`), 0o600))
	got, err := dashboardBuckets("", outputs)
	require.NoError(t, err)
	assert.Equal(t, []string{"rm-prod-acme-dash", "rm-prod-dash"}, got)

	require.NoError(t, os.WriteFile(outputs, []byte(`{"rm-prod": {"ApiUrl": "https://x"}}`), 0o600))
	_, err = dashboardBuckets("", outputs)
	assert.ErrorContains(t, err, "names no DashboardBucketName")
	_, err = dashboardBuckets("a", outputs)
	assert.ErrorContains(t, err, "do not go together")
	_, err = dashboardBuckets("", "")
	assert.ErrorContains(t, err, "--bucket")

	c := &cli{t: t, env: map[string]string{}}
	_, _, err = c.run("dashboard", "publish", "--bucket", "b", "--dir", dir)
	assert.ErrorContains(t, err, "no index.html: build the dashboard first (make web)")
}
