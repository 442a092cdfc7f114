package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"os"
	"path"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/spf13/cobra"

	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/web"
)

// objectStore is the part of S3 publishing the dashboard uses.
type objectStore interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

// dashboardBucketOutput is the stack output naming the bucket CloudFront serves the dashboard from.
const dashboardBucketOutput = "DashboardBucketName"

func (a *app) dashboardCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dashboard", Short: "Publish the web dashboard to a deployed stack"}
	var dir, bucket, outputs string
	var del bool
	publish := &cobra.Command{
		Use:   "publish",
		Short: "Upload the built dashboard (make web) into the stack's dashboard bucket",
		Long: "Upload every file of the build into the bucket CloudFront serves the dashboard from, the\n" +
			"hashed assets first and index.html last, so that no page ever names an asset not yet there.\n" +
			"The bucket is --bucket, or every DashboardBucketName in the file cdk deploy --outputs-file wrote.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			buckets, err := dashboardBuckets(bucket, outputs)
			if err != nil {
				return err
			}
			build := os.DirFS(dir)
			if _, err := fs.Stat(build, "index.html"); err != nil {
				return fmt.Errorf("%s has no index.html: build the dashboard first (make web)", dir)
			}
			cfg, err := localaws.LoadForTool(cmd.Context())
			if err != nil {
				return fmt.Errorf("load AWS configuration: %w", err)
			}
			s3c := s3.NewFromConfig(cfg)
			for _, b := range buckets {
				res, err := publishDashboard(cmd.Context(), s3c, b, build, del)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s: %d files uploaded (%d bytes), %d stale objects deleted\n", b, res.files, res.bytes, res.deleted)
			}
			return nil
		},
	}
	f := publish.Flags()
	f.StringVar(&dir, "dir", "web/dist/app", "the built dashboard")
	f.StringVar(&bucket, "bucket", "", "the dashboard bucket (the stack's DashboardBucketName output)")
	f.StringVar(&outputs, "cdk-outputs", "", "the JSON file cdk deploy --outputs-file wrote; every stack's dashboard bucket in it is published")
	f.BoolVar(&del, "delete", false, "also delete objects the build no longer has (open tabs may then fail to load pages of the old build)")
	cmd.AddCommand(publish)
	return cmd
}

// dashboardBuckets is the bucket given, or those named in a cdk outputs file, sorted.
func dashboardBuckets(bucket, outputsFile string) ([]string, error) {
	switch {
	case bucket != "" && outputsFile != "":
		return nil, errors.New("--bucket and --cdk-outputs do not go together")
	case bucket != "":
		return []string{bucket}, nil
	case outputsFile == "":
		return nil, errors.New("name the bucket with --bucket or the cdk outputs file with --cdk-outputs")
	}
	b, err := os.ReadFile(outputsFile)
	if err != nil {
		return nil, err
	}
	var stacks map[string]map[string]string
	if err := json.Unmarshal(b, &stacks); err != nil {
		return nil, fmt.Errorf("%s: not a cdk outputs file: %w", outputsFile, err)
	}
	var buckets []string
	for _, out := range stacks {
		if name := out[dashboardBucketOutput]; name != "" {
			buckets = append(buckets, name)
		}
	}
	if len(buckets) == 0 {
		return nil, fmt.Errorf("%s names no %s: is the stack deployed with the dashboard?", outputsFile, dashboardBucketOutput)
	}
	sort.Strings(buckets)
	return buckets, nil
}

type publishResult struct {
	files, deleted int
	bytes          int64
}

// publishDashboard uploads every file of build into bucket, index.html last, with the content
// type of its extension and the cache lifetime the dashboard's server gives it; with del it then
// deletes the objects the build does not have.
func publishDashboard(ctx context.Context, s3c objectStore, bucket string, build fs.FS, del bool) (publishResult, error) {
	var names []string
	err := fs.WalkDir(build, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return publishResult{}, err
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "index.html") != (names[j] == "index.html") {
			return names[j] == "index.html"
		}
		return names[i] < names[j]
	})
	var res publishResult
	for _, name := range names {
		body, err := fs.ReadFile(build, name)
		if err != nil {
			return res, err
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		in := &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(name), Body: bytes.NewReader(body),
			ContentType: aws.String(ctype), ContentLength: aws.Int64(int64(len(body))),
		}
		if cc := web.CacheControl(name); cc != "" {
			in.CacheControl = aws.String(cc)
		}
		if _, err := s3c.PutObject(ctx, in); err != nil {
			return res, fmt.Errorf("upload %s to %s: %w", name, bucket, err)
		}
		res.files++
		res.bytes += int64(len(body))
	}
	if !del {
		return res, nil
	}
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	var token *string
	for {
		page, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), ContinuationToken: token})
		if err != nil {
			return res, fmt.Errorf("list %s: %w", bucket, err)
		}
		var stale []types.ObjectIdentifier
		for _, o := range page.Contents {
			if !keep[aws.ToString(o.Key)] {
				stale = append(stale, types.ObjectIdentifier{Key: o.Key})
			}
		}
		if len(stale) > 0 {
			out, err := s3c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: stale, Quiet: aws.Bool(true)}})
			if err != nil {
				return res, fmt.Errorf("delete stale objects of %s: %w", bucket, err)
			}
			if len(out.Errors) > 0 {
				return res, fmt.Errorf("delete %s from %s: %s", aws.ToString(out.Errors[0].Key), bucket, aws.ToString(out.Errors[0].Message))
			}
			res.deleted += len(stale)
		}
		if !aws.ToBool(page.IsTruncated) {
			return res, nil
		}
		token = page.NextContinuationToken
	}
}
