// Package cloud registers the cloud object stores a region may live in: s3:// (Amazon S3
// and compatible stores), azblob:// (Azure Blob Storage) and gs:// (Google Cloud Storage).
// It is imported by the gild command only, for their SDKs are large and the tests need just
// file:// regions.
package cloud

import (
	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	_ "gocloud.dev/blob/s3blob"    // s3://
)
